// The record of completed hand-offs that `sharding.handoffs()` and the admin report show:
// the last 10,000 acquisitions, oldest first.
import type { Clock } from "@keyhold/core";

/** How long a hand-off took, reported by `handoffs()`. */
export interface HandoffInfo {
  readonly partition: number;
  /** The members asked for the partition's records. */
  readonly from: readonly string[];
  readonly ms: number;
  readonly records: number;
  /** Of `ms`: taking the fencing token, and the pull with its wait in the background queue (the
   * rest: replica quorum waits, reminder recovery, the last checks). */
  readonly takeMs?: number;
  readonly pullMs?: number;
  /** When it completed (the node's clock, ms since the epoch). */
  readonly at: number;
}

const KEPT = 10_000;

export class HandoffLog {
  readonly #clock: Clock;
  readonly #done: HandoffInfo[] = [];

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Records one completed hand-off, stamped with the node's clock. */
  record(info: Omit<HandoffInfo, "at">): void {
    this.#done.push({ ...info, at: this.#clock.now() });
    if (this.#done.length > KEPT) this.#done.shift();
  }

  get entries(): readonly HandoffInfo[] {
    return this.#done;
  }
}
