// Test helpers for Keyhold: real nats-server processes on random ports, single or clustered,
// node processes, a simulated bus and clock, and the fault-testing kit (fault proxy, proxied
// cluster, pause, history recorder, linearizability checker, acknowledgement analysis).

export {
  ACK_LOG_ENV,
  type AckAnalysis,
  type AckOverlap,
  type AckRecord,
  ackClock,
  analyzeAcks,
  counterShortfall,
  emitAck,
  lostWrites,
  parseAckRecord,
  readAckLog,
  registerLostWrites,
} from "./ack-log.js";
export { type ChildOptions, childEntry, type RunningChild, runTsProgram, spawnTs } from "./child.js";
export { InvalidHistoryError, TestClusterTimeoutError, TestingErrorCode } from "./errors.js";
export {
  type Direction,
  type FaultMode,
  FaultProxy,
  type FaultProxyOptions,
  type FaultProxyStats,
} from "./fault-proxy.js";
export {
  type HistoryEvent,
  HistoryRecorder,
  type HistoryRecorderOptions,
  mergeHistories,
  type Operation,
  type OpStatus,
  type PendingOp,
  sharedMonotonicNow,
} from "./history.js";
export { ChildStartError, IpcProcess, type TimedEvent } from "./ipc-process.js";
export { parseJepsenLog } from "./jepsen-log.js";
export {
  type CheckOptions,
  type CheckResult,
  checkLinearizable,
  DEFAULT_CHECK_MAX_STEPS,
  DEFAULT_CHECK_TIMEOUT_MS,
  type KeyResult,
  type Model,
  type Verdict,
} from "./linearizability.js";
export { counterModel, type RegisterModelOptions, registerModel } from "./models.js";
export { NatsCluster } from "./nats-cluster.js";
export type { NatsServerOptions } from "./nats-server.js";
export { NatsServer } from "./nats-server.js";
export { NodeProcess, type NodeProcessOptions, type NodeState } from "./node-process.js";
export {
  DEFAULT_PROXIED_PING_INTERVAL_MS,
  DEFAULT_PROXIED_PING_MAX,
  ProxiedNatsCluster,
  type ProxiedNatsClusterOptions,
} from "./proxied-nats-cluster.js";
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
export { TestCluster } from "./test-cluster.js";
export {
  DEFAULT_TEST_DRIVE_LIMIT_MS,
  DEFAULT_TEST_HEARTBEAT_MS,
  DEFAULT_TEST_NATS_HEARTBEAT_MS,
  type TestClusterOptions,
  type TestNodeOptions,
} from "./test-cluster-options.js";
export { TestNode, type TestNodeState } from "./test-node.js";
export { flushMicrotasks, VirtualClock } from "./virtual-clock.js";
export type { WaitForOptions } from "./wait-for.js";
export { waitFor } from "./wait-for.js";
