// Replication to the top-N owners of a key: writes to replicas and receiving copies (topping
// a partition's replicas up is refill.ts). After a handler runs, the primary sends the entity's
// new state and version to the other owners and the caller is answered only once the write
// quorum acknowledged. Replicas keep passive copies (no handlers) and hand them to whoever pulls
// the partition, so the next owner in HRW order (already a replica) continues from the highest
// version; duplicated, late or reordered copies are harmless. Replicas judge copies: one is
// accepted only from the node the replica's own view names as the key's primary and only if not
// older than the copy held (a late one of the same tenure is a duplicate); anything else is answered `stale`, never `repok`, and only validated copies count
// toward the quorum. A primary that hears `stale` may no longer act for the entity: its write
// fails with NotOwnerError and durability.ts gives the entity up.
//
// Fencing tokens: every `rep` carries the sender's epoch for the partition (epochs.ts). A replica
// keeps the highest epoch per partition (from copies, and from a new owner's pulls, which `fence`
// it) and refuses a lower one with `stale`; the primary then gives the partition up (onStale).
import { type Clock, type Logger, RequestFailedError, type ShardNode, type Transport } from "@keyhold/core";
import { CopiesNotSent, type CopyBatcher, type CopyBatchStats, isRepokOne } from "./copy-batch.js";
import { CopyStore, copyOf } from "./copy-store.js";
import type { CopyEntry } from "./copy-wire.js";
import { NotOwnerError, QuorumError } from "./errors.js";
import { emptyReplicationStats, type ReplicationStats } from "./replication-stats.js";
import { isNewer, sameTenure } from "./slots.js";
import { decodeReply, type EntityRecord, encodeRep, isError, nodeSubject } from "./wire.js";

export { emptyReplicationStats, type ReplicationStats } from "./replication-stats.js";

/** What a replica made of the copies of one `rep`: `ep` names its floor when the epoch was too low. */
type Judged = { kept: number; refused: number; primary: string | null; ep?: number };

/** How many acknowledgements a replicated write needs. */
export type WriteQuorum = "all" | "majority";

export interface ReplicatorParams {
  readonly node: ShardNode;
  readonly transport: Transport;
  readonly cluster: string;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly timeoutMs: number;
  readonly quorum: WriteQuorum;
  /** Copies wanted for an entity type (1 = not replicated). */
  readonly replicasOf: (type: string) => number;
  /** How long a copy this node should no longer hold is kept before it is dropped. */
  readonly orphanGraceMs: number;
  /** With a store: whether a copy last refreshed at `at` is of a forgotten dormant entity (lifecycle.ts). */
  readonly dormant?: ((at: number, now: number) => boolean) | undefined;
  /** Batches the copies to each replica per turn (copy-batch.ts); without it each goes alone. */
  readonly copies?: CopyBatcher | undefined;
}

/** What the host tells the replicator once it is built (host.ts). */
export interface ReplicatorHooks {
  /** This node's epoch for a partition it serves: the token its copies carry (partitions.ts). */
  readonly epochOf: (p: number) => number;
  /**
   * A replica refused a copy of partition `p` as stale; `ep` its epoch when it named one,
   * `primary` the node its view names the primary (null: none).
   */
  readonly onStale: (p: number, ep: number | undefined, primary: string | null) => void;
}

/** The outcome of a send refused because this node's lease is not valid. */
export const LEASE_LAPSED = "lease lapsed";

/** Copies needed besides the primary for a majority of `n`. */
export function majorityReplicas(n: number): number {
  return Math.floor(n / 2);
}

export class Replicator {
  readonly #p: ReplicatorParams;
  readonly #copies: CopyStore;
  // write()'s replicas per partition and copy count, for the ring they were computed on.
  #ring: unknown;
  readonly #targets = new Map<number, readonly string[]>();
  // The subject of each replica (bounded by the members ever seen; a few dozen bytes each).
  readonly #subjects = new Map<string, string>();
  // Per partition, the highest epoch seen: copies below it are refused. Bounded by the ring size.
  readonly #floors = new Map<number, number>();
  readonly stats: ReplicationStats = emptyReplicationStats();

  #hooks: ReplicatorHooks | undefined;

  constructor(params: ReplicatorParams) {
    this.#p = params;
    this.#copies = new CopyStore(() => this.stats.copiesMalformed++);
  }

  /** Connects the host's partitions (late: the replicator is built first). */
  attach(hooks: ReplicatorHooks): void {
    this.#hooks = hooks;
  }

  /** What the copy batcher sent (copy-batch.ts), when copies are batched. */
  get copyBatchStats(): Readonly<CopyBatchStats> | undefined {
    return this.#p.copies?.stats;
  }

  /** Copies wanted for an entity type (1 = not replicated). */
  replicasOf(type: string): number {
    return this.#p.replicasOf(type);
  }

  /** The highest epoch of partition `p` this node has seen as a replica (0: none). */
  floor(p: number): number {
    return this.#floors.get(p) ?? 0;
  }

  /** Raises the floor of `p` to `ep` (a new owner's pull, or this node's own tenure). */
  fence(p: number, ep: number): void {
    if (ep > (this.#floors.get(p) ?? 0)) this.#floors.set(p, ep);
  }

  /** The `rep` message carrying `recs` of partition `p` with this node's token for `p`. */
  message(p: number, recs: readonly EntityRecord[]): Uint8Array {
    const ep = this.#hooks?.epochOf(p) ?? 0;
    return encodeRep(p, this.#p.nodeId, recs, ep > 0 ? ep : undefined);
  }

  /** Number of passive copies this node holds. */
  get copyCount(): number {
    return this.#copies.size;
  }

  /** The replicas of partition `p` for a type with `n` copies, in this node's view. */
  targets(p: number, n: number): readonly string[] {
    // Computed once per ring (a view change builds a new one) and partition: every write asks.
    const ring = this.#p.node.ring;
    if (ring !== this.#ring) {
      this.#ring = ring;
      this.#targets.clear();
    }
    const id = p * 64 + n;
    let t = this.#targets.get(id);
    if (t === undefined) {
      t = ring
        .ownersOfPartition(p, n)
        .filter((m) => m !== this.#p.nodeId)
        .slice(0, n - 1);
      this.#targets.set(id, t);
    }
    return t;
  }

  /**
   * Sends one entity's new state to its replicas; resolves once the quorum acknowledged,
   * rejects with QuorumError otherwise. Quorum "all": every live replica, and at least a
   * majority of N copies in all; "majority": a majority of N copies.
   */
  write(rec: EntityRecord, p: number): Promise<void> {
    return new Promise<void>((resolve, reject) =>
      this.writeWith(rec, p, (err) => (err === undefined ? resolve() : reject(err))),
    );
  }

  /** write() with its outcome by callback: `done()` once the quorum acknowledged, else `done(err)`. */
  writeWith(rec: EntityRecord, p: number, done: (err?: unknown) => void): void {
    const n = this.#p.replicasOf(rec.t);
    if (n <= 1) return done();
    const targets = this.targets(p, n);
    const majority = majorityReplicas(n);
    if (targets.length < majority) {
      this.stats.quorumFailures++;
      return done(
        new QuorumError(
          `${rec.t}/${rec.key} needs ${majority} replica(s) for a majority of ${n} copies, but only ${targets.length} other member(s) are live`,
        ),
      );
    }
    // Sending a copy is an act as owner: only with a valid lease (dispatch.ts).
    if (!this.#p.node.leaseValid()) return done(new NotOwnerError(rec.t, rec.key, "its lease is not valid"));
    this.stats.writes++;
    const msg = this.message(p, [rec]);
    if (this.#p.quorum === "majority")
      return void this.#writeMajority(rec, p, targets, msg, majority).then(() => done(), done);
    // No promise of its own: each copy's outcome comes back by callback (#sendTo), and the last
    // one settles the write.
    const outcomes: string[] = new Array(targets.length);
    let left = targets.length;
    for (let i = 0; i < targets.length; i++) {
      this.#sendTo(targets[i]!, msg, p, (o) => {
        outcomes[i] = o;
        if (--left > 0) return;
        let err: unknown;
        try {
          this.#settle(rec, targets, outcomes, majority);
        } catch (e) {
          err = e;
        }
        done(err);
      });
    }
  }

  /** Throws unless the outcomes of a write's copies (quorum "all") make its quorum. */
  #settle(
    rec: EntityRecord,
    targets: readonly string[],
    outcomes: readonly string[],
    majority: number,
  ): void {
    let acks = 0;
    for (const o of outcomes) {
      if (o === "stale") throw this.#refused(rec, outcomes);
      if (o === "ok") acks++;
    }
    // Every replica acknowledged: the quorum holds whatever this node's view says.
    if (acks === targets.length) return;
    // Safety (issue 9): a replica that did not acknowledge is excused only once this node's view
    // dropped it (its lease expired here, or it left). "no-responders" alone proves nothing:
    // across a NATS split the other side's subscriptions vanish from our server at once, so a
    // primary on the minority side, in the lease it still holds, would excuse its replicas on
    // the majority side and acknowledge with copies only the minority holds, which the
    // majority's next owner never sees. Its lease lapses (L) before its view drops them (T), so
    // it acknowledges nothing more. A crashed replica counts against the quorum until dropped.
    const live = new Set(this.#p.node.members());
    const gone = outcomes.filter((o, i) => o !== "ok" && !live.has(targets[i]!)).length;
    const needed = Math.max(majority, targets.length - gone);
    if (acks < needed) {
      this.stats.quorumFailures++;
      throw new QuorumError(
        `${rec.t}/${rec.key}: ${acks} of ${needed} replica acknowledgements (${outcomes.join(", ")})`,
      );
    }
  }

  /** Resolves as soon as a majority of copies acknowledged; the rest finish on their own. */
  #writeMajority(
    rec: EntityRecord,
    p: number,
    targets: readonly string[],
    msg: Uint8Array,
    majority: number,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const outcomes: string[] = new Array(targets.length).fill("pending");
      let acks = 0;
      let answered = 0;
      targets.forEach((t, i) => {
        void this.send(t, msg, p).then((o) => {
          outcomes[i] = o;
          answered++;
          if (o === "ok") acks++;
          // Before the quorum: nothing was acknowledged, so the entity is given up now.
          if (o === "stale" && acks < majority) {
            acks = Number.NEGATIVE_INFINITY;
            reject(this.#refused(rec, outcomes));
          } else if (acks === majority) resolve();
          else if (answered === targets.length && acks < majority) {
            this.stats.quorumFailures++;
            reject(
              new QuorumError(
                `${rec.t}/${rec.key}: ${acks} of ${majority} replica acknowledgements (${outcomes.join(", ")})`,
              ),
            );
          }
        });
      });
    });
  }

  #refused(rec: EntityRecord, outcomes: readonly string[]): NotOwnerError {
    this.stats.writesRefused++;
    return new NotOwnerError(
      rec.t,
      rec.key,
      `a replica refused its copy as stale (${outcomes.join(", ")}); another node is primary, or holds a newer epoch or version`,
    );
  }

  /**
   * Sends one `rep` message (of partition `p`) to a replica: "ok", "stale", or why it was not
   * acknowledged. A `stale` answer gives the partition up (onStale).
   */
  send(target: string, msg: Uint8Array, p: number): Promise<string> {
    return new Promise<string>((resolve) => this.#sendTo(target, msg, p, resolve));
  }

  /** send() with its outcome by callback. */
  #sendTo(target: string, msg: Uint8Array, p: number, done: (outcome: string) => void): void {
    // Every copy leaves as an act as owner (writes and refills): only with a valid lease.
    if (!this.#p.node.leaseValid()) return done(LEASE_LAPSED);
    let subject = this.#subjects.get(target);
    if (subject === undefined) {
      subject = nodeSubject(this.#p.cluster, target);
      this.#subjects.set(target, subject);
    }
    const ok = (data: Uint8Array) => done(this.#outcome(data, p));
    const failed = (err: unknown) =>
      done(
        err instanceof CopiesNotSent
          ? LEASE_LAPSED
          : err instanceof RequestFailedError
            ? err.reason
            : "error",
      );
    // A transport that throws instead of rejecting is an outcome too, as when send() awaited it.
    try {
      if (this.#p.copies) this.#p.copies.enqueue(subject, msg, ok, failed);
      else this.#p.transport.request(subject, msg, { timeout: this.#p.timeoutMs }).then(ok, failed);
    } catch (err) {
      failed(err);
    }
  }

  /** A replica's answer to a copy: "ok", "stale" (the partition is given up: onStale), or why not. */
  #outcome(data: Uint8Array, p: number): string {
    // The common answer, `repok` for one copy, compared as bytes: no unpack, no object.
    if (isRepokOne(data)) return "ok";
    try {
      const reply = decodeReply(data);
      if (isError(reply)) return "bad reply";
      if (reply.k === "stale") {
        this.#hooks?.onStale(p, reply.ep, reply.primary);
        return "stale";
      }
      return reply.k === "repok" ? "ok" : "bad reply";
    } catch {
      return "error";
    }
  }

  /**
   * Replica side: judges copies of partition `p` sent by `from` under epoch `ep`. All refused
   * when `ep` is below the highest epoch this node knows for `p` (the answer names that one).
   * Refused one by one (counted in `refused`): a copy from a node this view does not name the
   * key's primary, older than the one held, or of another partition. Kept: a copy newer than
   * the one held. Neither: the same version again (a duplicate).
   */
  receive(p: number, recs: readonly EntityRecord[], from: string, ep = 0): Judged {
    return this.receiveCopies(p, recs.map(copyOf), from, ep);
  }

  /** receive() for copies as they come off the wire (copy version 2: records still packed). */
  receiveCopies(p: number, copies: readonly CopyEntry[], from: string, ep = 0): Judged {
    let kept = 0;
    let refused = 0;
    const ring = this.#p.node.ring;
    let primary: string | null = null;
    const floor = this.#floors.get(p) ?? 0;
    if (ep < floor) {
      this.stats.copiesRefused += copies.length;
      this.stats.epochRefused += copies.length;
      return { kept: 0, refused: copies.length, primary: ring.ownerOfPartition(p) ?? null, ep: floor };
    }
    if (ep > floor) this.#floors.set(p, ep);
    for (const c of copies) {
      const cur = this.#copies.get(c.t, c.key);
      // The partition is derived from the key here, never taken from the sender.
      const kp = ring.partition(c.key);
      const owner = ring.ownerOfPartition(kp) ?? null;
      // A newer copy of the sender's own tenure (same acquisition): this one is late, no refusal.
      if (kp !== p || owner !== from || (cur && isNewer(cur, c) && !sameTenure(cur, c))) {
        primary = owner;
        refused++;
        this.stats.copiesRefused++;
        continue;
      }
      if (cur && !isNewer(c, cur)) {
        this.stats.copiesStale++;
        continue;
      }
      this.#copies.keep(cur, c, p, this.#p.clock.now());
      this.stats.copiesIn++;
      kept++;
    }
    return { kept, refused, primary };
  }

  /** The copies this node holds for partition `p` (for a new owner's pull). */
  copiesOf(p: number): EntityRecord[] {
    return this.#copies.recordsOf(p);
  }

  /** Removes and returns the copies of `p`: this node became its primary. */
  takeCopies(p: number): EntityRecord[] {
    return this.#copies.take(p);
  }

  /** Records of `p` this node handed off (handoff.ts ack): kept as copies where it is a replica. */
  keepHandedOff(p: number, recs: readonly EntityRecord[]): void {
    const mine = (r: EntityRecord) => this.#p.node.ring.ownersOfPartition(p, this.#p.replicasOf(r.t));
    for (const r of recs)
      if (mine(r).includes(this.#p.nodeId)) this.#copies.keepRecord(r, p, this.#p.clock.now());
  }

  /** Drops copies this node has not been a replica of for longer than the grace period. */
  prune(): void {
    const now = this.#p.clock.now();
    const ring = this.#p.node.ring;
    this.#copies.dropWhere((c) => {
      if (this.#p.dormant?.(c.at, now)) return true;
      const n = this.#p.replicasOf(c.t);
      if (ring.ownersOfPartition(c.p, n).includes(this.#p.nodeId)) c.orphanSince = undefined;
      else if (c.orphanSince === undefined) c.orphanSince = now;
      else if (now - c.orphanSince > this.#p.orphanGraceMs) return true;
      return false;
    });
  }
}
