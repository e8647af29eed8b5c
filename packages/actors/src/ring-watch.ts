// The router's view of ring changes (router.ts): attempts waiting on a node are rejected when it
// drops out of the ring without a graceful leave, and retry backoffs end at once when the
// membership changes, so no ask waits out a timeout or a backoff the ring already answered.
import type { Clock, ShardNode } from "@keyhold/core";
import type { Batcher } from "./batch.js";
import { OwnerGone } from "./remote-ask.js";
import { nodeSubject } from "./wire.js";

export class RingWatch {
  readonly #p: {
    readonly node: ShardNode;
    readonly clock: Clock;
    readonly cluster: string;
    readonly batcher: Batcher;
  };
  // Per target, the attempts waiting on it (each rejected when the target dies, so no attempt
  // waits out its timeout for a dead owner); each removes itself when it settles, so a
  // long-lived client keeps nothing per finished ask.
  readonly #watch = new Map<string, Set<(err: OwnerGone) => void>>();
  #watching: Promise<void> | undefined;
  readonly #sleepers = new Set<() => void>();

  constructor(p: {
    readonly node: ShardNode;
    readonly clock: Clock;
    readonly cluster: string;
    readonly batcher: Batcher;
  }) {
    this.#p = p;
  }

  /**
   * Rejects with OwnerGone when `target` drops out of the ring without a graceful leave (its
   * lease expired: it crashed or was cut off). It will not answer, so waiting out the attempt
   * timeout would only delay the retry at the new owner.
   */
  whenGone(target: string): { promise: Promise<never>; dispose: () => void } {
    let onGone!: (err: OwnerGone) => void;
    const promise = new Promise<never>((_, r) => {
      onGone = r;
    });
    promise.catch(() => {});
    let set = this.#watch.get(target);
    if (!set) {
      set = new Set();
      this.#watch.set(target, set);
    }
    set.add(onGone);
    this.ensure();
    const waiting = set;
    const dispose = () => {
      waiting.delete(onGone);
      if (waiting.size === 0 && this.#watch.get(target) === waiting) this.#watch.delete(target);
    };
    return { promise, dispose };
  }

  /**
   * Waits `ms` before the next attempt, or less: a change of the ring (the owner we wait for
   * appeared, or the dead one was dropped) ends every backoff at once.
   */
  sleep(ms: number): Promise<void> {
    this.ensure();
    const { clock } = this.#p;
    return new Promise<void>((resolve) => {
      const wake = () => {
        clock.clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = clock.setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  ensure(): void {
    if (this.#watching) return;
    this.#watching = (async () => {
      for await (const e of this.#p.node.events()) {
        if (e.type === "members") for (const wake of [...this.#sleepers]) wake();
        if (e.type !== "members" || e.left.length === 0) continue;
        const departed = new Set(this.#p.node.departed());
        for (const id of e.left) {
          if (departed.has(id)) continue; // a graceful leaver still answers what it took
          this.#p.batcher.cancelSubject(nodeSubject(this.#p.cluster, id), () => new OwnerGone());
          const waiting = this.#watch.get(id);
          if (waiting) {
            this.#watch.delete(id);
            for (const reject of waiting) reject(new OwnerGone());
          }
        }
      }
    })();
  }
}
