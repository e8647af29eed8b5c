// Test helpers for Keyhold: real nats-server processes on random ports, single or clustered,
// plus a generic polling helper.

export { type ChildOptions, childEntry, type RunningChild, runTsProgram, spawnTs } from "./child.js";
export { ChildStartError, IpcProcess, type TimedEvent } from "./ipc-process.js";
export { NatsCluster } from "./nats-cluster.js";
export type { NatsServerOptions } from "./nats-server.js";
export { NatsServer } from "./nats-server.js";
export { NodeProcess, type NodeProcessOptions, type NodeState } from "./node-process.js";
export {
  type AskResult,
  longestOverlap,
  type OracleEvent,
  reportOracle,
  ShardingProcess,
  type ShardingProcessOptions,
  type ShardingState,
} from "./sharding-process.js";
export { SimBus, type SimBusOptions, SimEndpoint, seededRandom } from "./sim-bus.js";
export {
  DEFAULT_TEST_DRIVE_LIMIT_MS,
  DEFAULT_TEST_HEARTBEAT_MS,
  DEFAULT_TEST_NATS_HEARTBEAT_MS,
  TestCluster,
  type TestClusterOptions,
  TestClusterTimeoutError,
  TestingErrorCode,
  TestNode,
  type TestNodeOptions,
  type TestNodeState,
} from "./test-cluster.js";
export { flushMicrotasks, VirtualClock } from "./virtual-clock.js";
export type { WaitForOptions } from "./wait-for.js";
export { waitFor } from "./wait-for.js";
