// Deadlines checked by one coarse timer instead of a timer each: the transport's outstanding
// requests and the asks a node handles itself both use it, since a timer per message is a
// large share of a fast message's cost. A deadline fires up to DEADLINE_TICK_MS late.
import type { Clock } from "./clock.js";

export const DEADLINE_TICK_MS = 25;

/** A registered deadline; pass it to `cancel`. */
export interface Deadline {
  readonly at: number;
  readonly expire: () => void;
}

export class Deadlines {
  readonly #clock: Clock;
  readonly #pending = new Set<Deadline>();
  #timer: unknown;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The clock deadlines are measured on. */
  get clock(): Clock {
    return this.#clock;
  }

  /** Calls `expire` once the clock passed `at`, unless `cancel`led first. */
  add(at: number, expire: () => void): Deadline {
    const e = { at, expire };
    this.#pending.add(e);
    if (this.#timer === undefined) this.#arm();
    return e;
  }

  cancel(e: Deadline): void {
    this.#pending.delete(e);
  }

  #arm(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const now = this.#clock.now();
      for (const e of this.#pending) {
        if (e.at > now) continue;
        this.#pending.delete(e);
        e.expire();
      }
      if (this.#pending.size > 0) this.#arm();
    }, DEADLINE_TICK_MS);
  }

  /** Stops the timer and forgets every pending deadline without calling them. */
  close(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
  }
}
