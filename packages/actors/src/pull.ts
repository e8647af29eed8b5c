// The new owner's side of a hand-off: polling every member that may hold a partition's records
// until each hands them over, says it has none, or is given up on (see handoff.ts).
import { type Clock, type Logger, RequestFailedError, type ShardNode, type Transport } from "@keyhold/core";
import { Backoff, sleep } from "./backoff.js";
import type { HandoffStats } from "./handoff.js";
import type { Peer } from "./peers.js";
import type { Slot } from "./slots.js";
import { decodeReply, type EntityRecord, encode, isError, nodeSubject } from "./wire.js";

/**
 * How many handoffTimeoutMs in all a new owner waits for a holder that is still draining the
 * partition (it answers "busy"): its drain takes up to handoffTimeoutMs, plus whatever the
 * handlers running then still need. Then the new owner serves without it.
 */
export const BUSY_PATIENCE_FACTOR = 6;
/** Longest pause between two pulls of one partition from one holder that answered "wait". */
export const PULL_BACKOFF_MAX_MS = 50;

export interface PullerParams {
  readonly node: ShardNode;
  readonly transport: Transport;
  readonly cluster: string;
  readonly nodeId: string;
  readonly handoffTimeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stats: Pick<HandoffStats, "malformed" | "pulled" | "pullsAbandoned">;
  /** Installs records pulled for `p`; returns how many were newer (handoff.ts). */
  readonly install: (p: number, recs: readonly EntityRecord[], eager: Slot[]) => number;
}

/** What a pull got: records installed, whether every target answered, and who did not. */
export interface PullResult {
  readonly n: number;
  readonly complete: boolean;
  readonly missing: readonly Peer[];
}

export class Puller {
  readonly #p: PullerParams;

  constructor(params: PullerParams) {
    this.#p = params;
  }

  /**
   * Pulls `p` from every target; `complete` when every one of them answered, `missing` those
   * that did not. Each request carries `epoch`, the token this node took for `p`, which fences
   * the holder (handoff.ts). `again`: a retry of an incomplete pull (await-copy.ts), which
   * counts and logs no abandoned pull of its own.
   */
  async pull(
    p: number,
    targets: readonly Peer[],
    eager: Slot[],
    lost: Promise<"lost">,
    epoch = 0,
    again = false,
  ): Promise<PullResult> {
    const { clock, node } = this.#p;
    const deadline = clock.now() + this.#p.handoffTimeoutMs;
    let installed = 0;
    let complete = true;
    const missing: Peer[] = [];
    const problems: string[] = [];
    // Each holder is polled on its own, so a slow or vanished one never delays the others.
    const results = await Promise.all(
      targets.map((t) =>
        this.#from(p, t, deadline, eager, lost, epoch).then(
          (r) => {
            installed += r.n;
            if (!r.answered) {
              complete = false;
              missing.push(t);
            }
            return true;
          },
          (problem: string) => {
            problems.push(problem);
            complete = false;
            missing.push(t);
            return false;
          },
        ),
      ),
    );
    if (!again && results.includes(false) && node.ring.ownerOfPartition(p) === this.#p.nodeId) {
      this.#p.stats.pullsAbandoned++;
      this.#p.logger.warn(
        `node ${this.#p.nodeId}: hand-off of partition ${p} incomplete after ${this.#p.handoffTimeoutMs} ms (${problems.join("; ")}); serving with the records this node has`,
      );
    }
    return { n: installed, complete, missing };
  }

  /**
   * Polls one holder until it hands over (resolves with the count installed and whether it
   * answered at all) or rejects with why not.
   */
  async #from(
    p: number,
    peer: Peer,
    deadline: number,
    eager: Slot[],
    lost: Promise<"lost">,
    epoch: number,
  ): Promise<{ n: number; answered: boolean }> {
    const { clock, transport, node } = this.#p;
    const target = peer.id;
    const subject = nodeSubject(this.#p.cluster, target);
    let cursor = 0;
    let installed = 0;
    let received = 0;
    // Capped at 50 ms: every message for the partition waits on this loop, so a holder that
    // became ready just after a "wait" must not cost up to 200 ms more (the demo's dip at a
    // graceful leave). At most 20 polls a second per holder while it answers "wait".
    const backoff = new Backoff(5, PULL_BACKOFF_MAX_MS);
    let problem = "no answer";
    // A holder waiting for a handler that outlived its drain is waited for, up to a bound.
    let until = deadline;
    const patience = deadline + this.#p.handoffTimeoutMs * (BUSY_PATIENCE_FACTOR - 1);
    while (clock.now() < until) {
      const req = encode({
        v: 1,
        k: "pull",
        p,
        from: this.#p.nodeId,
        ...(cursor > 0 ? { c: cursor } : {}),
        ...(epoch > 0 ? { ep: epoch } : {}),
      });
      // Lost the partition meanwhile: stop asking. What arrived so far moves on with our
      // release; the rest stays with its holder for the next owner.
      if (node.ring.ownerOfPartition(p) !== this.#p.nodeId) return { n: installed, answered: false };
      try {
        // Short attempts: a holder that vanished mid-request must not hold the partition long.
        const attempt = Math.min(
          this.#p.attemptTimeoutMs,
          Math.max(100, Math.floor(this.#p.handoffTimeoutMs / 4)),
        );
        const timeout = Math.max(1, Math.min(attempt, until - clock.now()));
        const answer = await Promise.race([transport.request(subject, req, { timeout }), lost]);
        if (answer === "lost") return { n: installed, answered: false };
        const reply = decodeReply(answer);
        if (isError(reply) || reply.k !== "states" || reply.p !== p) {
          this.#p.stats.malformed++;
          problem = `malformed reply from ${target}`;
        } else if (reply.status === "ok") {
          installed += this.#p.install(p, reply.recs, eager);
          received += reply.recs.length;
          if (reply.next !== undefined) {
            cursor = reply.next; // more pages
            continue;
          }
          // Ack whatever was received, installed or not (we may hold the same versions as
          // replica copies already): the holder waits for the ack to let go of its outbox.
          if (received > 0) {
            // It names this pull (its epoch): the holder forgets only what it served to it.
            transport.publish(
              subject,
              encode({ v: 1, k: "ack", p, from: this.#p.nodeId, ...(epoch > 0 ? { ep: epoch } : {}) }),
            );
            this.#p.stats.pulled++;
          }
          return { n: installed, answered: true };
        } else if (reply.busy === true) {
          problem = `${target} still runs a handler of it`;
          until = Math.min(patience, Math.max(until, clock.now() + this.#p.handoffTimeoutMs));
        } else problem = `${target} still owns or drains it`;
      } catch (err) {
        // No responders: that member is gone (crashed or closed), nothing to pull there.
        if (err instanceof RequestFailedError && err.reason === "no-responders")
          return { n: 0, answered: false };
        problem = `${target}: ${err instanceof RequestFailedError ? err.reason : String(err)}`;
        // A member whose lease expired and that does not answer is taken for dead.
        if (!peer.patient && err instanceof RequestFailedError && err.reason === "timeout")
          return { n: installed, answered: false };
      }
      await sleep(clock, backoff.next(until - clock.now()));
    }
    throw problem;
  }
}
