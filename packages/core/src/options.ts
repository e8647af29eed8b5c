// ShardNode options: defaults, and the one place they are validated.
import type { ConnectionOptions, NatsConnection } from "@nats-io/nats-core";
import { type AdminOptions, type ParsedAdminOptions, parseAdminOptions } from "./admin.js";
import { type Clock, systemClock } from "./clock.js";
import { InvalidOptionError } from "./errors.js";
import { HASH_VERSION } from "./hash.js";
import { consoleLogger, type Logger } from "./logger.js";
import type { Transport } from "./transport.js";
import { ID_PATTERN, intOption as int } from "./validate.js";

export const DEFAULT_RING_SIZE = 64;
export const DEFAULT_HEARTBEAT_MS = 2000;
export const DEFAULT_TTL_MS = 6000;
export const DEFAULT_SKEW_MS = 5000;
export const DEFAULT_START_TIMEOUT_MS = 5000;
/**
 * joinStepPartitions: "auto" (the default) takes a quarter of what the node wins per step
 * (join-steps.ts); 0 joins at once. A joiner owns its partitions about five heartbeats after
 * start(): code that acts on ownership right after start() waits for `joinFront === undefined`
 * (docs/reference/configuration.md).
 */
export const DEFAULT_JOIN_STEP_PARTITIONS: number | "auto" = "auto";
/**
 * Largest ringSize accepted. A ring is rebuilt synchronously on every membership change in
 * O(members x ringSize) hashes (about 120 ms for 64 members x 4096 partitions here), so
 * larger rings would stall the event loop for seconds.
 */
export const MAX_RING_SIZE = 4096;
/**
 * The clock drift the lease rule allows for: monotonic clocks of two machines may run this
 * much faster or slower than each other (1000 ppm, ten times what NTP slews at most).
 */
export const MAX_CLOCK_DRIFT = 0.001;
/** Least time the lease rule must leave between a lease check and its effect (see lease.ts). */
export const MIN_EFFECT_BUDGET_MS = 5;

/** The holder's own lease L for a cluster config: ttlMs - heartbeatMs (see lease.ts). */
export function leaseMs(config: { readonly heartbeatMs: number; readonly ttlMs: number }): number {
  return config.ttlMs - config.heartbeatMs;
}

/**
 * The check-to-effect budget P the lease rule leaves: the largest P with
 * L·(1+ρ) + P < T·(1−ρ), where L is the holder's lease and T = ttlMs the peers' take-over wait.
 */
export function effectBudgetMs(config: { readonly heartbeatMs: number; readonly ttlMs: number }): number {
  return config.ttlMs * (1 - MAX_CLOCK_DRIFT) - leaseMs(config) * (1 + MAX_CLOCK_DRIFT);
}

/** How a member's own lease is renewed (see docs/concepts/safety.md). */
export type LeaseMode = "jetstream" | "echo";
/** The `leases` option: a mode, or "auto" (jetstream when the account has JetStream, else echo). */
export type LeasesOption = "auto" | LeaseMode;
export const DEFAULT_LEASES: LeasesOption = "auto";

/** Validates the `leases` option. */
export function parseLeases(value: unknown): LeasesOption {
  if (value === undefined) return DEFAULT_LEASES;
  if (value === "auto" || value === "jetstream" || value === "echo") return value;
  throw new InvalidOptionError("leases", '"auto", "jetstream" or "echo"', value);
}

export interface ShardNodeOptions {
  /** Answering `keyhold` admin requests, and whether `drain` is allowed. @default { enabled: true, allowDrain: false } */
  readonly admin?: AdminOptions;
  /** NATS server URL(s) to connect to. One of `servers`, `connection` or `transport` is required. */
  readonly servers?: string | readonly string[];
  /** An existing NATS connection. Keyhold does not close it on `close()`. */
  readonly connection?: NatsConnection;
  /** Extra nats.js connection options when Keyhold makes the connection from `servers`. */
  readonly natsOptions?: Partial<ConnectionOptions>;
  /** A custom transport (a simulated bus in tests). Advanced. */
  readonly transport?: Transport;
  /** Cluster name: nodes with the same name form one ring. Letters, digits, `_`, `-`. */
  readonly cluster: string;
  /** This member's id. @default a random uuid without dashes */
  readonly nodeId?: string;
  /** Number of partitions. Identical on every node. @default 64 */
  readonly ringSize?: number;
  /**
   * The wire protocol of the layer above the ring (`@keyhold/actors` sets its own): compared at
   * join like the ring size, so a node speaking another one is refused. 1-64 characters.
   * @default none
   */
  readonly protocol?: string;
  /**
   * Where the layer above takes its fencing tokens (`@keyhold/actors` sets it from its `epochs`
   * option: "jetstream" or "local"): compared at join between members that both name one, so
   * tokens that cannot be compared never mix in one cluster. 1-64 characters. @default none
   */
  readonly fencingTokens?: string;
  /** Heartbeat period in ms. Identical on every node. @default 2000 */
  readonly heartbeatMs?: number;
  /**
   * A peer is live while `monoNow - receivedAt(last heartbeat) <= ttlMs` on each node's own
   * monotonic clock; this node's own lease is `ttlMs - heartbeatMs` from the send time of its
   * last echoed heartbeat. Must exceed 2 x heartbeatMs. Identical on every node. @default 6000
   */
  readonly ttlMs?: number;
  /** Heartbeats emitted more than this many ms in the future are rejected. @default 5000 */
  readonly skewMs?: number;
  /**
   * What renews this node's own lease: `"echo"`, its heartbeat coming back through NATS;
   * `"jetstream"`, a stream's acknowledgement of its heartbeat, so that the side of a NATS
   * cluster split without the stream's quorum fences (start fails with
   * JetStreamUnavailableError without JetStream); `"auto"`, jetstream when the account has
   * JetStream, else echo. The effective mode must be identical on every node. @default "auto"
   */
  readonly leases?: LeasesOption;
  /**
   * How long a graceful leave is remembered (and shared with joining nodes), in ms. Layers
   * that hand state off after a leave need it to cover their hand-off time.
   * @default ttlMs + skewMs
   */
  readonly tombstoneMs?: number;
  /**
   * Track the ring without joining it: no heartbeats, owns nothing. An observer adopts the
   * cluster settings it was not given (ringSize, heartbeatMs, ttlMs, skewMs) from the running
   * cluster at start. @default false
   */
  readonly observer?: boolean;
  /** How long start() waits to see its own heartbeat come back. @default 5000 */
  readonly startTimeoutMs?: number;
  /** Time source and timers. @default the system clock */
  readonly clock?: Clock;
  /**
   * Join step by step: a node that starts while others are live first owns nothing (it is a
   * replica of what it will own), then takes over this many of its partitions at a time, the
   * next step once the previous one is served (docs/concepts/membership.md). 0 joins at once;
   * "auto" takes a quarter of the partitions it wins per step (four steps, whatever the ring
   * size). Ignored by observers. @default "auto"
   */
  readonly joinStepPartitions?: number | "auto";
  /** Where warnings go. @default warnings and errors to the console */
  readonly logger?: Logger;
}

/** The cluster settings a caller may give (the hash version is fixed by the code). */
export const CLUSTER_SETTINGS = ["ringSize", "heartbeatMs", "ttlMs", "skewMs"] as const;
export type ClusterSetting = (typeof CLUSTER_SETTINGS)[number];

/** The settings that must be identical on every node of a cluster. */
export interface ClusterConfig {
  readonly ringSize: number;
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  readonly skewMs: number;
  readonly hash: string;
  /** The layer above's wire protocol (ShardNodeOptions.protocol); absent when none is set. */
  readonly protocol?: string;
  /** The layer above's fencing-token source (ShardNodeOptions.fencingTokens); absent when none is set. */
  readonly fencingTokens?: string;
  /**
   * The effective lease mode (`leases: "auto"` is resolved at start); absent means "echo"
   * (a report or peer that predates the option).
   */
  readonly leases?: LeaseMode;
}

export interface ParsedOptions {
  readonly servers: readonly string[] | undefined;
  readonly connection: NatsConnection | undefined;
  readonly natsOptions: Partial<ConnectionOptions>;
  readonly transport: Transport | undefined;
  readonly cluster: string;
  readonly nodeId: string | undefined;
  /** The cluster settings; `config.leases` is provisional until start resolves `leases`. */
  readonly config: ClusterConfig;
  /** The `leases` option as given. */
  readonly leases: LeasesOption;
  /**
   * The cluster settings given explicitly. An observer adopts the others from the running
   * cluster; a given one that differs is a ConfigMismatchError.
   */
  readonly given: ReadonlySet<ClusterSetting>;
  readonly observer: boolean;
  readonly tombstoneMs: number;
  readonly startTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly admin: ParsedAdminOptions;
  /** 0: join at once. */
  readonly joinStepPartitions: number | "auto";
}

function token(name: string, value: unknown): string {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new InvalidOptionError(name, "1-64 characters of letters, digits, `_` or `-`", value);
  }
  return value;
}

/** Validates cluster-wide settings (also used by Sharding and tools). */
export function parseClusterConfig(o: {
  ringSize?: unknown;
  heartbeatMs?: unknown;
  ttlMs?: unknown;
  skewMs?: unknown;
  leases?: unknown;
}): ClusterConfig {
  const ringSize = int("ringSize", o.ringSize, DEFAULT_RING_SIZE, 1, MAX_RING_SIZE);
  const heartbeatMs = int("heartbeatMs", o.heartbeatMs, DEFAULT_HEARTBEAT_MS, 10, 3_600_000);
  const ttlMs = int("ttlMs", o.ttlMs, Math.max(DEFAULT_TTL_MS, 3 * heartbeatMs), 1, 86_400_000);
  if (ttlMs <= heartbeatMs) {
    throw new InvalidOptionError("ttlMs", `greater than heartbeatMs (${heartbeatMs}); 3x is advised`, ttlMs);
  }
  // The holder renews its lease L = ttlMs - heartbeatMs at every echo: it must outlast one beat
  // (or the node would fence between beats) and leave room for drift and the check-to-effect
  // delay before any peer's wait of ttlMs runs out.
  if (ttlMs <= 2 * heartbeatMs) {
    throw new InvalidOptionError(
      "ttlMs",
      `greater than 2 x heartbeatMs (${2 * heartbeatMs}) so the lease ttlMs - heartbeatMs outlasts a beat; 3x is advised`,
      ttlMs,
    );
  }
  if (effectBudgetMs({ heartbeatMs, ttlMs }) < MIN_EFFECT_BUDGET_MS) {
    throw new InvalidOptionError(
      "heartbeatMs",
      `large enough next to ttlMs (${ttlMs}) that L·(1+ρ) + ${MIN_EFFECT_BUDGET_MS} ms < ttlMs·(1−ρ) with L = ttlMs − heartbeatMs, ρ = ${MAX_CLOCK_DRIFT}`,
      heartbeatMs,
    );
  }
  const skewMs = int("skewMs", o.skewMs, DEFAULT_SKEW_MS, 0, 86_400_000);
  // "auto" is resolved at start (ShardNode); until then the config says echo.
  const leases: LeaseMode = parseLeases(o.leases) === "jetstream" ? "jetstream" : "echo";
  return { ringSize, heartbeatMs, ttlMs, skewMs, hash: HASH_VERSION, leases };
}

export function parseOptions(options: ShardNodeOptions): ParsedOptions {
  if (options === null || typeof options !== "object") {
    throw new InvalidOptionError("options", "an object", options);
  }
  const o = options as ShardNodeOptions & Record<string, unknown>;
  const cluster = token("cluster", o.cluster);
  const nodeId = o.nodeId === undefined ? undefined : token("nodeId", o.nodeId);
  let servers: string[] | undefined;
  if (o.servers !== undefined) {
    const list = typeof o.servers === "string" ? [o.servers] : o.servers;
    if (
      !Array.isArray(list) ||
      list.length === 0 ||
      !list.every((s) => typeof s === "string" && s.length > 0)
    ) {
      throw new InvalidOptionError("servers", "a non-empty URL or array of URLs", o.servers);
    }
    servers = [...list];
  }
  const given = [servers, o.connection, o.transport].filter((x) => x !== undefined).length;
  if (given !== 1) {
    throw new InvalidOptionError(
      "servers",
      "set, or else exactly one of `connection` or `transport`",
      o.servers,
    );
  }
  if (o.connection !== undefined && (typeof o.connection !== "object" || o.connection === null)) {
    throw new InvalidOptionError("connection", "a NatsConnection", o.connection);
  }
  if (o.observer !== undefined && typeof o.observer !== "boolean") {
    throw new InvalidOptionError("observer", "a boolean", o.observer);
  }
  if (o.natsOptions !== undefined && (typeof o.natsOptions !== "object" || o.natsOptions === null)) {
    throw new InvalidOptionError("natsOptions", "an object of nats.js ConnectionOptions", o.natsOptions);
  }
  if (
    o.protocol !== undefined &&
    (typeof o.protocol !== "string" || o.protocol.length < 1 || o.protocol.length > 64)
  ) {
    throw new InvalidOptionError("protocol", "a string of 1-64 characters", o.protocol);
  }
  if (
    o.fencingTokens !== undefined &&
    (typeof o.fencingTokens !== "string" || o.fencingTokens.length < 1 || o.fencingTokens.length > 64)
  ) {
    throw new InvalidOptionError("fencingTokens", "a string of 1-64 characters", o.fencingTokens);
  }
  const config: ClusterConfig = {
    ...parseClusterConfig(o),
    ...(o.protocol !== undefined ? { protocol: o.protocol } : {}),
    ...(o.fencingTokens !== undefined ? { fencingTokens: o.fencingTokens } : {}),
  };
  const tombstoneMs = int(
    "tombstoneMs",
    o.tombstoneMs,
    config.ttlMs + config.skewMs,
    config.ttlMs + config.skewMs,
    86_400_000,
  );
  const startTimeoutMs = int("startTimeoutMs", o.startTimeoutMs, DEFAULT_START_TIMEOUT_MS, 1, 3_600_000);
  const clock = o.clock ?? systemClock;
  if (
    typeof clock.now !== "function" ||
    typeof clock.monoNow !== "function" ||
    typeof clock.setTimeout !== "function" ||
    typeof clock.clearTimeout !== "function"
  ) {
    throw new InvalidOptionError(
      "clock",
      "a Clock with now(), monoNow(), setTimeout() and clearTimeout()",
      clock,
    );
  }
  const logger = o.logger ?? consoleLogger;
  if (
    !["debug", "info", "warn", "error"].every(
      (m) => typeof (logger as unknown as Record<string, unknown>)[m] === "function",
    )
  ) {
    throw new InvalidOptionError("logger", "a Logger with debug, info, warn and error methods", logger);
  }
  return {
    servers,
    connection: o.connection,
    natsOptions: o.natsOptions ?? {},
    transport: o.transport,
    cluster,
    nodeId,
    config,
    leases: parseLeases(o.leases),
    given: new Set(CLUSTER_SETTINGS.filter((k) => o[k] !== undefined)),
    observer: o.observer ?? false,
    tombstoneMs,
    startTimeoutMs,
    clock,
    logger,
    admin: parseAdminOptions(o.admin),
    joinStepPartitions: joinStepOption(o.joinStepPartitions, config.ringSize),
  };
}

/** joinStepPartitions: "auto" (the default), or an integer from 0 (at once) to ringSize. */
function joinStepOption(value: unknown, ringSize: number): number | "auto" {
  if (value === undefined) return DEFAULT_JOIN_STEP_PARTITIONS;
  if (value === "auto") return "auto";
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 || value > ringSize)
    throw new InvalidOptionError("joinStepPartitions", `"auto" or an integer from 0 to ${ringSize}`, value);
  return value;
}

/** The settings that differ between two cluster configs, for ConfigMismatchError. */
export function diffConfig(ours: ClusterConfig, theirs: ClusterConfig) {
  const keys = ["ringSize", "heartbeatMs", "ttlMs", "skewMs", "hash", "leases"] as const;
  const value = (c: ClusterConfig, k: (typeof keys)[number]) =>
    k === "leases" ? (c.leases ?? "echo") : c[k];
  const diff: { setting: string; ours: string | number; theirs: string | number }[] = keys
    .filter((k) => value(ours, k) !== value(theirs, k))
    .map((k) => ({
      setting: k === "hash" ? "hash version" : k,
      ours: value(ours, k),
      theirs: value(theirs, k),
    }));
  const [a, b] = [ours.protocol ?? "none", theirs.protocol ?? "none"];
  if (a !== b) diff.push({ setting: "wire protocol", ours: a, theirs: b });
  // Fencing tokens are compared only between members that both name a source: observers
  // (clients) take none, and a ring without a layer above has none.
  const [fa, fb] = [ours.fencingTokens, theirs.fencingTokens];
  if (fa !== undefined && fb !== undefined && fa !== fb)
    diff.push({ setting: "fencing tokens (epochs)", ours: fa, theirs: fb });
  return diff;
}
