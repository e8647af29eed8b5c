// Deadlines of asks handled on this node. One coarse timer checks them all, instead of a
// timer per ask on the fast local path; a deadline fires up to TICK_MS late.
import type { Clock } from "@keyhold/core";

export const TICK_MS = 25;

interface Entry {
  readonly deadline: number;
  readonly expire: () => void;
}

export class Deadlines {
  readonly #clock: Clock;
  readonly #pending = new Set<Entry>();
  #timer: unknown;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Calls `expire` once `deadline` has passed, unless `cancel`led first. */
  add(deadline: number, expire: () => void): Entry {
    const e = { deadline, expire };
    this.#pending.add(e);
    if (this.#timer === undefined) this.#arm();
    return e;
  }

  cancel(e: Entry): void {
    this.#pending.delete(e);
  }

  #arm(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const now = this.#clock.now();
      for (const e of this.#pending) {
        if (e.deadline > now) continue;
        this.#pending.delete(e);
        e.expire();
      }
      if (this.#pending.size > 0) this.#arm();
    }, TICK_MS);
  }

  close(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
  }
}
