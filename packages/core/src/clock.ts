// The clock that lease and heartbeat logic talks to, so tests can drive it virtually.

/**
 * Wall-clock time, a monotonic time and timers. The default uses Date.now, performance.now
 * and the global timers.
 */
export interface Clock {
  /** Wall-clock ms: stamps heartbeats and orders them; may jump. */
  now(): number;
  /**
   * Monotonic ms from an arbitrary origin: never jumps, only drifts. Leases are measured on it
   * (see lease.ts), so wall-clock steps and skew between machines drop out of them.
   */
  monoNow(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monoNow: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // Timers of a membership engine must never keep a process alive on their own.
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Races `promise` against a timer on `clock`: rejects with `onTimeout()` after `ms`. */
export async function withTimeout<T>(
  clock: Clock,
  promise: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: unknown;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clock.clearTimeout(timer);
  }
}

/** One timer re-armed for the earliest moment something must be re-checked (monotonic `at`). */
export class WakeTimer {
  readonly #clock: Clock;
  readonly #fire: () => void;
  #timer: unknown;
  #at: number | undefined;

  constructor(clock: Clock, fire: () => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  /** Fires at monotonic `at` (or never, when undefined); re-arming for the same moment is free. */
  arm(at: number | undefined): void {
    if (at === this.#at) return;
    this.#clock.clearTimeout(this.#timer);
    this.#at = at;
    if (at === undefined) return;
    const wait = Math.max(0, at - this.#clock.monoNow());
    this.#timer = this.#clock.setTimeout(() => {
      this.#at = undefined;
      this.#fire();
    }, wait);
  }

  stop(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#at = undefined;
  }
}
