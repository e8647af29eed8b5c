// Per-partition fencing tokens. Each time a node starts serving a partition it takes a new
// epoch for it; the epoch travels on every replica copy, pull, hand-off record and store
// write, replicas refuse anything older with `stale`, and records order by (epoch, version).
//
// Two sources, chosen once at start by the `epochs` option:
// - "jetstream": a conditional write (expected last revision) of key `p.<partition>` in a
//   JetStream KV bucket (file storage, replicas = min(3, servers)); the stream sequence the
//   write got is the epoch. Sequences only grow, so every acquisition of a partition, by
//   anyone, gets a higher epoch than all before it, and only the side of a NATS partition
//   that reaches the bucket's quorum can take one at all.
// - "local": no JetStream (one plain server, the simulated bus): the acquisition stamp of
//   issue 8, max(highest seen + 1, wall clock). It orders tenures that saw each other's
//   records, and the wall clock orders the rest, as well as the clocks agree. It cannot
//   protect a NATS cluster split (docs/concepts/safety.md).
// Modes must not mix in one cluster (stamps are wall-clock sized and would beat every KV epoch).
import type { Clock, Logger } from "@keyhold/core";
import { advertisesJetStream, InvalidOptionError, isJetStreamAnswer, jetStreamApiError } from "@keyhold/core";
import { jetstream } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { Packr } from "msgpackr";
import { sleep } from "./backoff.js";
import { EpochError } from "./errors.js";

/** Where fencing tokens come from (`ShardingOptions.epochs`). */
export type EpochMode = "auto" | "jetstream" | "local";

/** Counters of one node's epoch source (part of `stats().handoff`). */
export interface EpochStats {
  /** Epochs taken (acquisitions of a partition that completed the take). */
  taken: number;
  /** KV operations spent on them (writes and reads; 0 in local mode). */
  kvOps: number;
  /** Conditional writes that lost to another writer and were tried again. */
  conflicts: number;
  /** Takes that failed (no JetStream quorum, timeout); the partition waits and tries again. */
  failures: number;
}

/** Takes fencing tokens for partitions. */
export interface EpochSource {
  /** "jetstream" (KV bucket), "local" (acquisition stamp) or "memory" (MemoryEpochs, tests). */
  readonly kind: "jetstream" | "local" | "memory";
  readonly stats: EpochStats;
  /**
   * A new epoch for partition `p`, above every epoch of `p` ever taken (jetstream) or above
   * `seen`, the highest this node knows of (local). Rejects with EpochError when none can be
   * taken now.
   */
  take(p: number, seen: number): Promise<number>;
  /**
   * Optional, for sources that agree (jetstream, memory): the epoch of `p` that this node's
   * latest successful take of `p` replaced (0: there was none). When it is the epoch of this
   * node's own previous tenure, nobody took `p` in between, so nobody else served it.
   */
  previous?(p: number): number | undefined;
  /**
   * Optional (jetstream): `epoch`, this node's latest take of `p`, was spent unused (the
   * partition was lost before it pulled, fenced or served with it). Marks it so in the source,
   * when nobody took `p` since, so that the tenure it was taken over stays provably unbroken
   * for its holder (`previous`). Best effort: without the mark the proof fails, which is safe.
   */
  spend?(p: number, epoch: number): Promise<void>;
  /**
   * Optional, for sources that agree (jetstream, memory): the latest epoch of `p` now (0: none),
   * read through the source's leader. An acquirer whose epoch is below it was overtaken by a
   * concurrent take, whose pull may have fenced the replicas above its epoch (handoff.ts).
   */
  latest?(p: number): Promise<number>;
}

export function emptyEpochStats(): EpochStats {
  return { taken: 0, kvOps: 0, conflicts: 0, failures: 0 };
}

/** The acquisition-stamp fallback: no agreement, ordered by what was seen and the wall clock. */
export function localEpochs(clock: Clock): EpochSource {
  const stats = emptyEpochStats();
  return {
    kind: "local",
    stats,
    take: async (_p, seen) => {
      stats.taken++;
      return Math.max(seen + 1, Math.floor(clock.now()));
    },
  };
}

/**
 * Epochs agreed among the nodes of one process: one counter shared by every partition, like a
 * KV bucket's stream sequence. For tests on the simulated bus: `source(nodeId)` is the
 * `epochs` option of one node; a node in `unreachable` cannot take epochs (the side of a NATS
 * split without the bucket's quorum).
 */
export class MemoryEpochs {
  #seq = 0;
  /** Nodes that cannot reach the shared counter now (fault injection). */
  readonly unreachable = new Set<string>();
  /** The latest epoch of each partition. */
  readonly latest = new Map<number, number>();

  source(nodeId: string): EpochSource {
    const stats = emptyEpochStats();
    const previous = new Map<number, number>();
    return {
      kind: "memory",
      stats,
      take: async (p) => {
        stats.kvOps++;
        if (this.unreachable.has(nodeId)) {
          stats.failures++;
          throw new EpochError(`node ${nodeId} cannot reach the epoch counter (fault injection)`);
        }
        const e = ++this.#seq;
        previous.set(p, this.latest.get(p) ?? 0);
        this.latest.set(p, e);
        stats.taken++;
        return e;
      },
      previous: (p) => previous.get(p),
      latest: async (p) => {
        stats.kvOps++;
        if (this.unreachable.has(nodeId))
          throw new EpochError(`node ${nodeId} cannot reach the epoch counter`);
        return this.latest.get(p) ?? 0;
      },
    };
  }
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
/** Conditional writes tried per take before it fails (each loss means another acquirer won). */
const MAX_ATTEMPTS = 5;

/** Epochs from a JetStream KV bucket (see the top of this file). */
export class KvEpochs implements EpochSource {
  readonly kind = "jetstream";
  readonly stats = emptyEpochStats();
  readonly #kv: KV;
  readonly #nodeId: string;
  readonly #timeoutMs: number;
  // Per partition, the revision the latest successful conditional write replaced.
  readonly #previous = new Map<number, number>();

  constructor(kv: KV, nodeId: string, timeoutMs: number) {
    this.#kv = kv;
    this.#nodeId = nodeId;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * The latest epoch of `p` (0: none yet), read through the stream's leader, with who wrote it
   * and the revision its writer's chain of takes started from (`base` below).
   */
  async #latest(
    p: number,
    key: string,
  ): Promise<{ rev: number; node?: string; base?: number; spent?: boolean }> {
    this.stats.kvOps++;
    try {
      const e = await this.#kv.get(key);
      if (!e) return { rev: 0 };
      let v: { node?: unknown; prev?: unknown; spent?: unknown } = {};
      try {
        v = packr.unpack(e.value) as typeof v;
      } catch {
        // Not ours to read: treated as a foreign writer's.
      }
      return {
        rev: e.revision,
        ...(typeof v.node === "string" ? { node: v.node } : {}),
        ...(typeof v.prev === "number" ? { base: v.prev } : {}),
        ...(v.spent === true ? { spent: true } : {}),
      };
    } catch (e) {
      this.stats.failures++;
      throw new EpochError(`Reading the epoch of partition ${p} failed: ${String(e)}`, { cause: e });
    }
  }

  previous(p: number): number | undefined {
    return this.#previous.get(p);
  }

  async latest(p: number): Promise<number> {
    return (await this.#latest(p, `p.${p}`)).rev;
  }

  async spend(p: number, epoch: number): Promise<void> {
    // Conditional on `epoch` being still the latest: if anyone took `p` since, nothing is marked.
    const value = packr.pack({ node: this.#nodeId, prev: this.#previous.get(p) ?? 0, spent: true });
    this.stats.kvOps++;
    await this.#kv.update(`p.${p}`, value, epoch, this.#timeoutMs).then(
      () => {},
      () => {},
    );
  }

  async take(p: number, seen: number): Promise<number> {
    const key = `p.${p}`;
    // The epoch this node saw last is usually the latest one (it was a replica, or the previous
    // owner's pull told it): one write. Knowing none (a joiner), or guessing wrong, it reads
    // the latest through the stream's leader (the bucket allows no direct reads) and writes.
    let expected = seen > 0 ? seen : (await this.#latest(p, key)).rev;
    // `base`: the revision this chain of writes started from. A write of ours that timed out
    // but was stored anyway (a leader election) is found on the next conflict, written by us
    // from the same base: the chain goes on from it, and previous(p) still names the base.
    let base = expected;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const value = packr.pack({ node: this.#nodeId, prev: base });
      try {
        this.stats.kvOps++;
        const rev =
          expected > 0
            ? await this.#kv.update(key, value, expected, this.#timeoutMs)
            : await this.#kv.create(key, value);
        if (rev <= seen) {
          // Only a bucket deleted and re-created (its sequences restart) gives this.
          throw new EpochError(
            `The epoch bucket gave ${rev} for partition ${p}, not above ${seen} already seen: was it deleted? Records of older epochs would win`,
          );
        }
        this.stats.taken++;
        // The write was conditional on `expected` being the key's latest revision, and every
        // revision from `base` to `expected` was ours.
        this.#previous.set(p, base);
        return rev;
      } catch (err) {
        if (err instanceof EpochError || !isConflict(err)) {
          this.stats.failures++;
          throw err instanceof EpochError
            ? err
            : new EpochError(`Taking an epoch for partition ${p} failed: ${String(err)}`, { cause: err });
        }
        this.stats.conflicts++;
        const latest = await this.#latest(p, key);
        expected = latest.rev;
        // Also ours to go on from: a take made over `base` that its taker marked spent (never
        // used: `spend`), whoever made it.
        const spentOverBase = latest.spent === true && latest.base === base;
        if (!spentOverBase && (latest.node !== this.#nodeId || latest.base !== base)) base = latest.rev;
      }
    }
    this.stats.failures++;
    throw new EpochError(`Partition ${p}: ${MAX_ATTEMPTS} conditional epoch writes lost to other writers`);
  }
}

function isConflict(err: unknown): boolean {
  const text = String((err as Error)?.message ?? err);
  return /wrong last sequence|key exists|10071|10164/i.test(text);
}

/** Validates `ShardingOptions.epochs`: a mode, or an EpochSource of your own. */
export function parseEpochMode(v: unknown): EpochMode | EpochSource {
  if (v === undefined) return "auto";
  if (v === "auto" || v === "jetstream" || v === "local") return v;
  if (typeof v === "object" && v !== null && typeof (v as EpochSource).take === "function")
    return v as EpochSource;
  throw new InvalidOptionError("epochs", '"auto", "jetstream", "local" or an EpochSource', v);
}

/** The bucket holding the epochs of cluster `cluster`. */
export function epochBucket(cluster: string): string {
  return `keyhold_epochs_${cluster}`;
}

/**
 * Opens the epoch source of `mode`: "auto" takes JetStream when the connection has it, local
 * stamps otherwise (and always on the simulated bus, which has no connection).
 */
export async function openEpochs(a: {
  readonly mode: EpochMode | EpochSource;
  readonly connection: NatsConnection | undefined;
  readonly cluster: string;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly timeoutMs: number;
}): Promise<EpochSource> {
  const { mode, connection: nc } = a;
  if (typeof mode === "object") return mode;
  if (mode === "local") return localEpochs(a.clock);
  if (nc === undefined) {
    if (mode === "jetstream")
      throw new EpochError('epochs: "jetstream" needs Sharding to run over NATS (servers or connection)');
    return localEpochs(a.clock);
  }
  // A server without JetStream says so in its INFO: "auto" then needs no request, and a node user
  // without JetStream permissions (secure-a-cluster.md) is never refused (as the lease mode does).
  if (mode === "auto" && !advertisesJetStream(nc)) {
    a.logger.info(`node ${a.nodeId}: no JetStream on this NATS; fencing tokens are local acquisition stamps`);
    return localEpochs(a.clock);
  }
  // Asked until it answers, for up to JETSTREAM_READY_MS when the server advertises JetStream (a
  // NATS cluster still electing its meta leader); a refusal is final (core jetstream-ready.ts).
  const err = await jetStreamApiError(nc, { clock: a.clock, timeoutMs: a.timeoutMs });
  if (err !== undefined) {
    if (mode === "jetstream")
      throw new EpochError(
        `epochs: "jetstream" but the NATS server offers no JetStream (${String(err)}); start nats-server with -js, or use epochs: "local" and accept that a NATS cluster split is not protected`,
        { cause: err },
      );
    // A refusal (no JetStream for this account or user) is a deployment's choice; silence is not.
    if (isJetStreamAnswer(err))
      a.logger.info(
        `node ${a.nodeId}: no JetStream for this NATS account (${String(err)}); fencing tokens are local acquisition stamps`,
      );
    else
      a.logger.warn(
        `node ${a.nodeId}: the NATS server advertises JetStream but its API did not answer (${String(err)}); fencing tokens are local acquisition stamps`,
      );
    return localEpochs(a.clock);
  }
  const kvm = new Kvm(jetstream(nc, { timeout: a.timeoutMs }));
  // replicas = min(3, servers). The client cannot count the servers (a cluster may not advertise
  // them), so a clustered server is asked for 3, then 2: JetStream refuses more replicas than it
  // has servers. An existing bucket keeps the replicas it was created with.
  const tries = nc.info?.cluster ? [3, 2, 1] : [1];
  const bucket = epochBucket(a.cluster);
  let lastErr: unknown;
  for (let i = 0, attempt = 0; i < tries.length; ) {
    const replicas = tries[i]!;
    try {
      // allow_direct off: every read is answered by the stream's leader, never a lagging replica.
      const kv = await kvm.create(bucket, { replicas, history: 1, storage: "file", allow_direct: false });
      if (replicas < tries[0]!)
        a.logger.warn(`node ${a.nodeId}: epoch bucket ${bucket} has only ${replicas} replica(s)`);
      return new KvEpochs(kv, a.nodeId, a.timeoutMs);
    } catch (err) {
      lastErr = err;
      // Fewer servers than replicas: try fewer. Anything else (a cluster still electing its
      // meta leader at start) is tried again as it is, a few times.
      if (/insufficient resources|not supported in non-clustered/i.test(String(err))) i++;
      else if (++attempt >= 10) break;
      else await sleep(a.clock, 500);
    }
  }
  throw new EpochError(`Cannot open the epoch bucket ${bucket}: ${String(lastErr)}`, { cause: lastErr });
}
