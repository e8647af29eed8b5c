// A backstop for the liveness of owned partitions (issue 9, run 7 (b): a node gave partitions up
// at the heal of a NATS split and never served them again, while every view named it their
// owner, and the path has not been found). Ownership events start every acquisition, and a
// partition given up on `stale` is taken back by its own timer (fencing.ts); when the view does
// not change, no event comes, so a path that ends an acquisition without serving, or forgets a
// give-up, would leave the partition unserved for good: its messages buffered or timing out.
//
// Every heartbeat this watch looks at the partitions the ring names this node for, while its
// lease is valid. One that is neither served ("ready"), nor draining ("releasing"), nor being
// acquired (an acquisition called and not finished), nor waiting for its take-back, twice in a
// row a heartbeat apart, is acquired (a new epoch and a pull, as after any ownership event) and
// counted in `stats().handoff.partitionsRecovered`, with a warning naming what it found. Two
// looks, because an ownership event is processed a moment after the ring changed.
import type { Clock, Logger, ShardNode } from "@keyhold/core";
import type { PartitionStates } from "./partitions.js";

export interface OwnedWatchParams {
  readonly node: ShardNode;
  readonly partitions: PartitionStates;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly nodeId: string;
  /** Whether an acquisition of `p` was called and has not finished (handoff.ts). */
  readonly acquiring: (p: number) => boolean;
  /** Whether `p` was given up on `stale` and its take-back is still to come (fencing.ts). */
  readonly yielded: (p: number) => boolean;
  /** Starts an acquisition of `p`. */
  readonly acquire: (p: number) => void;
  readonly stats: { partitionsRecovered: number };
}

export class OwnedWatch {
  readonly #p: OwnedWatchParams;
  /** Partitions found unserved and idle at the last look. */
  #suspect = new Set<number>();
  #timer: unknown;
  #stopped = false;

  constructor(params: OwnedWatchParams) {
    this.#p = params;
  }

  /** Looks every heartbeat until stop(). */
  start(): void {
    const next = () => {
      if (this.#stopped) return;
      this.look();
      this.#timer = this.#p.clock.setTimeout(next, this.#p.node.config.heartbeatMs);
    };
    this.#timer = this.#p.clock.setTimeout(next, this.#p.node.config.heartbeatMs);
  }

  stop(): void {
    this.#stopped = true;
    this.#p.clock.clearTimeout(this.#timer);
  }

  /** One look (exported for the unit test): acquires what was idle at this look and the last. */
  look(): void {
    const { node, partitions, acquiring, yielded } = this.#p;
    const before = this.#suspect;
    this.#suspect = new Set();
    if (node.closed || !node.leaseValid()) return;
    for (const p of node.ownedPartitions()) {
      const st = partitions.state(p);
      if (st === "ready" || st === "releasing" || acquiring(p) || yielded(p)) continue;
      if (!before.has(p)) {
        this.#suspect.add(p);
        continue;
      }
      this.#p.stats.partitionsRecovered++;
      this.#p.logger.warn(
        `node ${this.#p.nodeId}: partition ${p} is owned here but was neither served nor being taken over (state ${st ?? "none"}) for a heartbeat; taking it over`,
      );
      this.#p.acquire(p);
    }
  }
}
