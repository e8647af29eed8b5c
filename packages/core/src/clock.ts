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
