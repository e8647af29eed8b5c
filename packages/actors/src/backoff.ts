// The one backoff helper: delays that double from `first` up to `max`, and a sleep on the
// injected clock. Used by the router's retries, hand-off pulls and refill resends.
import type { Clock } from "@keyhold/core";

export class Backoff {
  readonly #max: number;
  #delay: number;

  constructor(first: number, max: number) {
    this.#delay = first;
    this.#max = max;
  }

  /** The next delay, never more than `limit` (the time left) and never below 1 ms. */
  next(limit = Number.POSITIVE_INFINITY): number {
    const d = Math.max(1, Math.min(this.#delay, limit));
    this.#delay = Math.min(this.#delay * 2, this.#max);
    return d;
  }
}

/** Resolves after `ms` on `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise<void>((r) => clock.setTimeout(r, ms));
}
