// TestCluster's options: what a test may set, their defaults, and their validation at start
// (errors name the option and the value), plus the Sharding options every node is given.
import type { EntityClass, ShardingOptions } from "@keyhold/actors";
import { type Clock, InvalidOptionError, type Logger, silentLogger, type Transport } from "@keyhold/core";

/** Heartbeat period of a TestCluster on the simulated bus, in virtual ms. */
export const DEFAULT_TEST_HEARTBEAT_MS = 100;
/** Heartbeat period of a TestCluster on nats-server, in real ms: short, so tests stay quick. */
export const DEFAULT_TEST_NATS_HEARTBEAT_MS = 200;
/** Longest a TestCluster drives virtual time for one call before giving up, in virtual ms. */
export const DEFAULT_TEST_DRIVE_LIMIT_MS = 600_000;

/** Sharding options a TestCluster passes to every node; the connection and identity are its own. */
export type TestNodeOptions = Omit<
  ShardingOptions,
  | "servers"
  | "connection"
  | "natsOptions"
  | "transport"
  | "clock"
  | "cluster"
  | "nodeId"
  | "entities"
  | "heartbeatMs"
  | "ttlMs"
  | "ringSize"
  | "logger"
>;

export interface TestClusterOptions {
  /** Entity classes every node hosts. */
  readonly entities: readonly EntityClass[];
  /** Nodes started by `start()`, named `node-1` … `node-N`. @default 3 */
  readonly nodes?: number;
  /**
   * Run on NATS instead of the simulated bus: `true` starts an embedded nats-server (needs
   * `nats-server` on PATH), `{ url }` uses a running one. Time is then real. @default false
   */
  readonly nats?: boolean | { readonly url: string };
  /** Heartbeat period. @default 100 on the simulated bus, 200 on NATS */
  readonly heartbeatMs?: number;
  /** Lease time-to-live. @default 3 × heartbeatMs */
  readonly ttlMs?: number;
  /** Partitions. @default 64 */
  readonly ringSize?: number;
  /** Simulated bus: delivery delay in virtual ms. @default 1 */
  readonly latencyMs?: number;
  /** Simulated bus: seed of its randomness (queue-group picks, jitter). @default 1 */
  readonly seed?: number;
  /** Further Sharding options for every node, e.g. `{ store: memoryStore(), idleMs: 1000 }`. @default {} */
  readonly node?: TestNodeOptions;
  /** Where the nodes log. @default silent */
  readonly logger?: Logger;
  /**
   * Simulated bus: a call through `ref()`/`run()` fails with TestClusterTimeoutError after
   * this much virtual time without settling. @default 600000
   */
  readonly driveLimitMs?: number;
}

/** The options every mode uses, validated, with their defaults filled in. */
export interface ParsedTestClusterOptions {
  readonly nodes: number;
  readonly nats: boolean | { readonly url: string };
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  readonly driveLimitMs: number;
}

function positiveInt(name: string, value: unknown, def: number, min = 1): number {
  if (value === undefined) return def;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(name, `an integer >= ${min}`, value);
  }
  return value;
}

/** Validates the options both modes use; throws InvalidOptionError naming the option and value. */
export function parseTestClusterOptions(options: TestClusterOptions): ParsedTestClusterOptions {
  if (options === null || typeof options !== "object") {
    throw new InvalidOptionError("options", "an object", options);
  }
  if (!Array.isArray(options.entities) || options.entities.length === 0) {
    throw new InvalidOptionError("entities", "a non-empty array of entity classes", options.entities);
  }
  const nodes = positiveInt("nodes", options.nodes, 3, 0);
  const nats = options.nats ?? false;
  if (
    typeof nats !== "boolean" &&
    (typeof nats !== "object" || nats === null || typeof nats.url !== "string")
  ) {
    throw new InvalidOptionError("nats", "true, false or { url: string }", nats);
  }
  const heartbeatMs = positiveInt(
    "heartbeatMs",
    options.heartbeatMs,
    nats ? DEFAULT_TEST_NATS_HEARTBEAT_MS : DEFAULT_TEST_HEARTBEAT_MS,
    10,
  );
  const ttlMs = positiveInt("ttlMs", options.ttlMs, 3 * heartbeatMs, heartbeatMs + 1);
  const driveLimitMs = positiveInt("driveLimitMs", options.driveLimitMs, DEFAULT_TEST_DRIVE_LIMIT_MS);
  if (options.node !== undefined && (typeof options.node !== "object" || options.node === null)) {
    throw new InvalidOptionError("node", "an object of Sharding options", options.node);
  }
  return { nodes, nats, heartbeatMs, ttlMs, driveLimitMs };
}

/** Validates the options of the simulated bus (read only in that mode). */
export function parseSimBusOptions(options: TestClusterOptions): { latencyMs: number; seed: number } {
  const latencyMs = positiveInt("latencyMs", options.latencyMs, 1, 0);
  const seed = positiveInt("seed", options.seed, 1, 0);
  return { latencyMs, seed };
}

/** The Sharding options of node (or client) `id`: the test's own, then the cluster's fixed ones. */
export function testShardingOptions(
  o: TestClusterOptions,
  p: { readonly heartbeatMs: number; readonly ttlMs: number },
  id: string,
  transport: Transport,
  clock: Clock,
): ShardingOptions {
  return {
    skewMs: Math.max(p.ttlMs, 200),
    handoffTimeoutMs: Math.max(20 * p.heartbeatMs, 2_000),
    ...o.node,
    transport,
    clock,
    cluster: "test",
    nodeId: id,
    entities: o.entities,
    heartbeatMs: p.heartbeatMs,
    ttlMs: p.ttlMs,
    ...(o.ringSize === undefined ? {} : { ringSize: o.ringSize }),
    logger: o.logger ?? silentLogger,
  };
}
