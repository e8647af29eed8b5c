// The owner's side of fencing tokens: taking a partition's epoch before it is served (retried
// while the epoch source cannot answer, e.g. on the side of a NATS split without the bucket's
// quorum, which therefore serves nothing), and giving a partition up when a replica answers
// `stale` (someone holds a newer epoch, or the replica's view names another primary).
import type { Clock, Logger, ShardNode } from "@keyhold/core";
import { Backoff, sleep } from "./backoff.js";
import type { EpochSource } from "./epochs.js";
import type { PartitionStates } from "./partitions.js";
import type { Replicator } from "./replication.js";

export interface FencingParams {
  readonly node: ShardNode;
  readonly partitions: PartitionStates;
  readonly replicator?: Replicator | undefined;
  readonly epochs: EpochSource;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly nodeId: string;
  /** Stops serving `p`: its records go to the outbox, marked pre-fence (handoff.ts). */
  readonly release: (p: number) => void;
  /** Takes `p` back through a normal acquisition (new epoch, pull). */
  readonly acquire: (p: number) => void;
}

export class Fencing {
  readonly #p: FencingParams;
  // Partitions given up on `stale`, waiting to be taken back.
  readonly #yielded = new Set<number>();

  constructor(params: FencingParams) {
    this.#p = params;
  }

  /** Whether `p` was given up on `stale` and its take-back has not decided yet. */
  yielded(p: number): boolean {
    return this.#yielded.has(p);
  }

  /** An acquisition of `p` starts (an ownership event, or taking it back after giveUp). */
  acquiring(p: number): void {
    this.#yielded.delete(p);
  }

  /**
   * A new epoch for `p` above everything this node has seen of it; retried until taken, or
   * undefined once the partition is lost (its release follows on the partition's chain).
   */
  async take(p: number, lost: Promise<"lost">): Promise<number | undefined> {
    const { node, partitions, replicator, clock, logger, nodeId } = this.#p;
    const backoff = new Backoff(50, 2000);
    let gone = false;
    void lost.then(() => {
      gone = true;
    });
    for (let attempt = 0; ; attempt++) {
      if (gone || node.closed || node.ring.ownerOfPartition(p) !== nodeId) {
        // Said, so that a partition left unserved can be traced (issue 9, run 7 (b)).
        const why = gone
          ? "released meanwhile"
          : node.closed
            ? "closing"
            : `owner ${node.ring.ownerOfPartition(p) ?? "none"}`;
        logger.info(`node ${nodeId}: no epoch taken for partition ${p}: ${why}`);
        return undefined;
      }
      const seen = Math.max(partitions.seen(p), replicator?.floor(p) ?? 0);
      try {
        // Not recorded as seen yet: begin() does, once the records are in (handoff.ts checks
        // whether any of them carries an epoch at or above this one).
        const epoch = await this.#p.epochs.take(p, seen);
        // Lost while the take was in flight (say, a stale view at the heal of a NATS split whose
        // take went through once the bucket was reachable again): never go on to pull, fence
        // replicas with it or serve. The epoch is simply spent; the next owner takes a higher one.
        if (gone || node.closed || node.ring.ownerOfPartition(p) !== nodeId) {
          logger.info(
            `node ${nodeId}: epoch ${epoch} of partition ${p} spent: the partition was lost meanwhile`,
          );
          // Marked spent in the bucket: the tenure it was taken over stays provably unbroken
          // for its holder (unbroken below), which otherwise drops its pre-fence records.
          void this.#p.epochs.spend?.(p, epoch);
          return undefined;
        }
        return epoch;
      } catch (err) {
        if (attempt % 20 === 0) logger.warn(`node ${nodeId}: partition ${p} not served yet: ${String(err)}`);
        await Promise.race([sleep(clock, backoff.next()), lost]);
      }
    }
  }

  /**
   * Whether someone took an epoch of `p` above `epoch` since (a concurrent acquirer, say one
   * whose view briefly lacked this node at the heal of a split): its pull may have fenced the
   * replicas above `epoch`, so the first copy under it would be refused `stale` and the partition
   * given up. False when the source cannot tell (no `latest`, or the read failed): then a `stale`
   * still corrects it, as before.
   */
  async overtaken(p: number, epoch: number): Promise<boolean> {
    const latest = await this.#p.epochs.latest?.(p).catch(() => undefined);
    return latest !== undefined && latest > epoch;
  }

  /**
   * Whether the epoch just taken for `p` directly follows this node's own previous tenure of it
   * (call before partitions.begin): the conditional write replaced that very epoch, so no other
   * node took `p`, and none served it, in between. Then this node's pre-fence records of `p`
   * are its latest state even if a member did not answer the pull (handoff.ts). Only sources
   * that agree know (jetstream, memory); local stamps never claim it.
   *
   * Why this is safe (issue 8). Serving `p` takes begin(p, e) with `e` from a successful take
   * in that very acquisition (one acquisition, one tenure: handoff.ts), and takes are ordered
   * by the conditional write. So previous(p) === stamp(p) means every epoch written after our
   * tenure's was our own and never served (a take that timed out but was stored: KvEpochs'
   * `base` chain), and no node served `p` after us: the pre-fence records we hold are the
   * newest state of `p`, restart records included (release.ts drains every slot, the
   * version-0 restarts of a dropped record too, so they still beat older records waiting in
   * another node's outbox). An unanswered member can only hold records of tenures before ours,
   * which lose to ours by epoch wherever ours exist (isNewer). stamp(p) survives releases
   * (partitions.ts) and is 0 before any tenure, so `own > 0` keeps a fresh node from matching
   * a first take (previous 0). Local stamps have no previous(), hence never unbroken: the
   * re-acquire drops and restarts as before. The pause property with agreed epochs
   * (reacquire.property.test.ts) drives this path (the unanswered pull only in some runs).
   */
  unbroken(p: number): boolean {
    const own = this.#p.partitions.stamp(p);
    return own > 0 && this.#p.epochs.previous?.(p) === own;
  }

  /**
   * Stops acting for `p` at once; takes it back, with a new epoch, if this node's view still
   * names it the owner after two heartbeats, by when views have converged. False when `p` was
   * not being served (already given up or moving).
   */
  giveUp(p: number): boolean {
    const { partitions, node, clock, nodeId } = this.#p;
    if (partitions.state(p) !== "ready") return false;
    this.#p.logger.warn(`node ${nodeId}: a replica refused a copy of partition ${p} as stale; giving it up`);
    this.#p.release(p);
    this.#yielded.add(p);
    // The release drains first, which may take up to handoffTimeoutMs (a handler waiting on a
    // replica across the split): while it runs, look again a heartbeat later. Deciding on
    // "releasing" once and never again left the partition unserved for good whenever the view
    // still named this node its owner, since no ownership event would come (issue 9, (d)/(e)).
    const retake = () => {
      if (!this.#yielded.has(p) || node.closed) return;
      const st = partitions.state(p);
      if (st === "releasing" && node.ring.ownerOfPartition(p) === nodeId) {
        clock.setTimeout(retake, node.config.heartbeatMs);
        return;
      }
      this.#yielded.delete(p);
      const owner = node.ring.ownerOfPartition(p);
      const again = owner === nodeId && (st === undefined || st === "pending");
      this.#p.logger.info(
        `node ${nodeId}: partition ${p} given up on stale: ${again ? "taking it back" : `not taken back here (state ${st ?? "none"}, owner ${owner ?? "none"})`}`,
      );
      if (again) this.#p.acquire(p);
    };
    clock.setTimeout(retake, 2 * node.config.heartbeatMs);
    return true;
  }
}
