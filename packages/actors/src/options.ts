// Sharding options: defaults, and the one place they are validated.
import { InvalidOptionError, intOption as int, isObj, type ShardNodeOptions } from "@keyhold/core";
import type { EntityClass } from "./entity.js";
import { type EpochMode, type EpochSource, parseEpochMode } from "./epochs.js";
import type { WriteQuorum } from "./replication.js";
import type { StoreFactory } from "./store.js";
import { MAX_BATCH_ENTRIES } from "./wire.js";

export const DEFAULT_ASK_TIMEOUT_MS = 10_000;
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 3_000;
export const DEFAULT_MAILBOX_SIZE = 1_000;
export const DEFAULT_CONCURRENCY = 256;
export const DEFAULT_IDLE_MS = 300_000;
export const DEFAULT_MAX_ACTIVE = 100_000;
export const DEFAULT_HANDOFF_TIMEOUT_MS = 10_000;
export const DEFAULT_DEDUPE_WINDOW_MS = 60_000;
export const DEFAULT_DEDUPE_MAX_ENTRIES = 100_000;
export const DEFAULT_STARTUP_BUFFER_BYTES = 32 * 1024 * 1024;
export const DEFAULT_BACKGROUND_CONCURRENCY = 64;
export const DEFAULT_BATCH_MAX_ENTRIES = 512;

/** Options of `Sharding.start` (a node that hosts entities) and `Sharding.connect` (a client). */
export interface ShardingOptions extends Omit<ShardNodeOptions, "observer" | "protocol" | "fencingTokens"> {
  /** OpenTelemetry spans and metrics (docs/how-to/observe.md). @default { enabled: false } */
  readonly telemetry?: TelemetryOptions;
  /** Entity classes this node hosts (or, for a client, may address). */
  readonly entities?: readonly EntityClass[];
  /** Default deadline of an ask, retries included. @default 10000 */
  readonly askTimeoutMs?: number;
  /** Deadline of one attempt within an ask before it is retried. @default 3000 */
  readonly attemptTimeoutMs?: number;
  /** Messages an entity may have queued; one more fails with MailboxFullError. @default 1000 */
  readonly mailboxSize?: number;
  /**
   * Most asks, tells or replies to one node sent as one NATS message (a batch: asks sent in the
   * same turn of the event loop travel together, split below the server's max_payload).
   * 1 sends each alone, still in the batch envelope. @default 512
   */
  readonly batchMaxEntries?: number;
  /** Entities running a handler at the same time on this node. @default 256 */
  readonly concurrency?: number;
  /** Passivate an entity after this many ms without a message. 0 disables. @default 300000 */
  readonly idleMs?: number;
  /** Most live entity instances on this node; beyond it the least recently used are passivated. @default 100000 */
  readonly maxActive?: number;
  /** How long a new owner waits for the old owner's hand-off, and a closing node for its peers to take it. @default 10000 */
  readonly handoffTimeoutMs?: number;
  /** How long a handled ask's id is remembered so a retry is not applied twice. @default 60000 */
  readonly dedupeWindowMs?: number;
  /** Most remembered ask ids; the oldest are forgotten first. @default 100000 */
  readonly dedupeMaxEntries?: number;
  /**
   * Most bytes of requests kept while the node starts (they arrive before it is built, and
   * are served once it is); beyond them, or beyond 100,000 requests, they are dropped and
   * their senders retry. @default 33554432 (32 MiB)
   */
  readonly startupBufferBytes?: number;
  /**
   * Durable state: loaded on activation, written through before each answer, conditional on
   * the last revision seen. `natsKvStore({ bucket })` or `memoryStore()`. @default none
   */
  readonly store?: StoreFactory;
  /**
   * Acknowledgements a replicated write waits for: "all" = every live replica and at least a
   * majority of the copies; "majority" = a majority of the copies. @default "all"
   */
  readonly writeQuorum?: WriteQuorum;
  /** How long a write waits for one replica's acknowledgement. @default attemptTimeoutMs */
  readonly replicationTimeoutMs?: number;
  /**
   * Group commit for replicated and stored entities: an entity handles its next messages while
   * the previous write is replicating, and answers are released in order once a write covering
   * them is durable. `false` makes every message wait for its own write. @default true
   */
  readonly groupCommit?: boolean;
  /**
   * Where per-partition fencing tokens come from: "jetstream" = a conditional write to a
   * JetStream KV bucket per acquisition (fails at start without JetStream); "local" = the
   * acquisition stamp (no agreement: a NATS cluster split is not protected); "auto" =
   * "jetstream" when the NATS server has JetStream, else "local". The same on every node. An
   * EpochSource of your own (MemoryEpochs for tests on the simulated bus) is used as given.
   * @default "auto"
   */
  readonly epochs?: EpochMode | EpochSource;
  /**
   * Called synchronously right before this node answers an ask it ran as owner (after the
   * lease check of the answer), for node-side acknowledgement logs in fault tests (see
   * `emitAck` in @keyhold/testing). Keep it cheap: it runs on every answered ask. @default none
   */
  readonly onAck?: (ack: AckInfo) => void;
  /**
   * Background tasks (hand-off pulls, refills, pruning) running at once on this node; more wait
   * in priority order (docs/concepts/background-work.md). @default 64
   */
  readonly backgroundConcurrency?: number;
}

/** One ask this node answered as owner (see `onAck`). */
export interface AckInfo {
  readonly type: string;
  readonly key: string;
  readonly handler: string;
  readonly args: readonly unknown[];
  readonly result: unknown;
  /** The ask's message id; undefined for a local ask. */
  readonly id: string | undefined;
  /**
   * When it was handed to the entity and when it was answered: ms of
   * `performance.timeOrigin + performance.now()` (monotonic, comparable between processes of
   * one machine).
   */
  readonly t0: number;
  readonly t1: number;
}

export interface ParsedShardingOptions {
  readonly entities: readonly EntityClass[];
  readonly askTimeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly mailboxSize: number;
  readonly batchMaxEntries: number;
  readonly concurrency: number;
  readonly idleMs: number;
  readonly maxActive: number;
  readonly startupBufferBytes: number;
  readonly handoffTimeoutMs: number;
  readonly dedupeWindowMs: number;
  readonly dedupeMaxEntries: number;
  readonly store: StoreFactory | undefined;
  readonly writeQuorum: WriteQuorum;
  readonly replicationTimeoutMs: number;
  readonly groupCommit: boolean;
  readonly epochs: EpochMode | EpochSource;
  readonly onAck: ((ack: AckInfo) => void) | undefined;
  readonly backgroundConcurrency: number;
}

/** Validates the actor-level options; the ShardNode options are validated by @keyhold/core. */
export function parseShardingOptions(o: ShardingOptions): ParsedShardingOptions {
  if (o === null || typeof o !== "object") throw new InvalidOptionError("options", "an object", o);
  const entities = o.entities ?? [];
  if (!Array.isArray(entities))
    throw new InvalidOptionError("entities", "an array of entity classes", entities);
  if (
    o.store !== undefined &&
    (typeof o.store !== "object" || o.store === null || typeof o.store.open !== "function")
  ) {
    throw new InvalidOptionError(
      "store",
      "a store factory such as natsKvStore({ bucket }) or memoryStore()",
      o.store,
    );
  }
  if (o.onAck !== undefined && typeof o.onAck !== "function") {
    throw new InvalidOptionError("onAck", "a function", o.onAck);
  }
  if (o.writeQuorum !== undefined && o.writeQuorum !== "all" && o.writeQuorum !== "majority") {
    throw new InvalidOptionError("writeQuorum", '"all" or "majority"', o.writeQuorum);
  }
  if (o.groupCommit !== undefined && typeof o.groupCommit !== "boolean") {
    throw new InvalidOptionError("groupCommit", "a boolean", o.groupCommit);
  }
  const attemptTimeoutMs = int(
    "attemptTimeoutMs",
    o.attemptTimeoutMs,
    DEFAULT_ATTEMPT_TIMEOUT_MS,
    1,
    3_600_000,
  );
  return {
    entities,
    store: o.store,
    onAck: o.onAck,
    writeQuorum: o.writeQuorum ?? "all",
    groupCommit: o.groupCommit ?? true,
    epochs: parseEpochMode(o.epochs),
    replicationTimeoutMs: int("replicationTimeoutMs", o.replicationTimeoutMs, attemptTimeoutMs, 1, 3_600_000),
    askTimeoutMs: int("askTimeoutMs", o.askTimeoutMs, DEFAULT_ASK_TIMEOUT_MS, 1, 3_600_000),
    attemptTimeoutMs,
    mailboxSize: int("mailboxSize", o.mailboxSize, DEFAULT_MAILBOX_SIZE, 1, 10_000_000),
    concurrency: int("concurrency", o.concurrency, DEFAULT_CONCURRENCY, 1, 1_000_000),
    backgroundConcurrency: int(
      "backgroundConcurrency",
      o.backgroundConcurrency,
      DEFAULT_BACKGROUND_CONCURRENCY,
      1,
      1024,
    ),
    batchMaxEntries: int(
      "batchMaxEntries",
      o.batchMaxEntries,
      DEFAULT_BATCH_MAX_ENTRIES,
      1,
      MAX_BATCH_ENTRIES,
    ),
    idleMs: int("idleMs", o.idleMs, DEFAULT_IDLE_MS, 0, 86_400_000 * 30),
    maxActive: int("maxActive", o.maxActive, DEFAULT_MAX_ACTIVE, 1, 100_000_000),
    handoffTimeoutMs: int("handoffTimeoutMs", o.handoffTimeoutMs, DEFAULT_HANDOFF_TIMEOUT_MS, 1, 3_600_000),
    dedupeWindowMs: int("dedupeWindowMs", o.dedupeWindowMs, DEFAULT_DEDUPE_WINDOW_MS, 0, 86_400_000),
    dedupeMaxEntries: int("dedupeMaxEntries", o.dedupeMaxEntries, DEFAULT_DEDUPE_MAX_ENTRIES, 0, 100_000_000),
    startupBufferBytes: int(
      "startupBufferBytes",
      o.startupBufferBytes,
      DEFAULT_STARTUP_BUFFER_BYTES,
      0,
      4 * 1024 * 1024 * 1024,
    ),
  };
}

/** What a tracer or meter provider must offer (structurally the @opentelemetry/api ones). */
export interface TracerProviderLike {
  getTracer(name: string, version?: string): unknown;
}
export interface MeterProviderLike {
  getMeter(name: string, version?: string): unknown;
}

/** `ShardingOptions.telemetry`. */
export interface TelemetryOptions {
  /** Emit spans and metrics through @opentelemetry/api (which must be installed). @default false */
  readonly enabled?: boolean;
  /** Where spans go. @default the global provider of @opentelemetry/api */
  readonly tracerProvider?: TracerProviderLike;
  /** Where metrics go. @default the global provider of @opentelemetry/api */
  readonly meterProvider?: MeterProviderLike;
}

export function parseTelemetryOptions(o: unknown): TelemetryOptions {
  if (o === undefined) return {};
  if (!isObj(o))
    throw new InvalidOptionError("telemetry", "an object { enabled?, tracerProvider?, meterProvider? }", o);
  if (o.enabled !== undefined && typeof o.enabled !== "boolean")
    throw new InvalidOptionError("telemetry.enabled", "a boolean", o.enabled);
  for (const [name, method] of [
    ["tracerProvider", "getTracer"],
    ["meterProvider", "getMeter"],
  ] as const) {
    const v = o[name];
    if (v !== undefined && !(isObj(v) && typeof v[method] === "function"))
      throw new InvalidOptionError(`telemetry.${name}`, `an object with ${method}()`, v);
  }
  return o as TelemetryOptions;
}
