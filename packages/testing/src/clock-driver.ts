// Drives a VirtualClock in 1 ms steps while calls are pending, so a test awaits a call on the
// simulated bus as it would on NATS; a call pending past its limit fails with
// TestClusterTimeoutError.
import { TestClusterTimeoutError } from "./errors.js";
import type { VirtualClock } from "./virtual-clock.js";

export class ClockDriver {
  readonly #clock: VirtualClock;
  /** Calls being driven, each with the way to fail it when the drive limit is reached. */
  readonly #inflight = new Map<
    Promise<unknown>,
    { readonly until: number; readonly limitMs: number; readonly fail: (err: unknown) => void }
  >();
  #driving = false;

  constructor(clock: VirtualClock) {
    this.#clock = clock;
  }

  /** Resolves with `promise`, advancing the clock until it settles or `limitMs` passed. */
  run<T>(promise: Promise<T>, limitMs: number): Promise<T> {
    let fail: (err: unknown) => void = () => {};
    const limit = new Promise<never>((_, reject) => {
      fail = reject;
    });
    const tracked: Promise<T> = Promise.race([promise, limit]).finally(() => this.#inflight.delete(tracked));
    tracked.catch(() => {});
    this.#inflight.set(tracked, { until: this.#clock.now() + limitMs, limitMs, fail });
    void this.#drive();
    return tracked;
  }

  async #drive(): Promise<void> {
    const clock = this.#clock;
    if (this.#driving) return;
    this.#driving = true;
    try {
      while (this.#inflight.size > 0) {
        for (const [p, { until, limitMs, fail }] of this.#inflight) {
          if (clock.now() < until) continue;
          // A call that never settles: a handler that never returns, with its deadline raised.
          this.#inflight.delete(p);
          fail(
            new TestClusterTimeoutError(
              `TestCluster: a call still pending after ${limitMs} virtual ms (driveLimitMs)`,
            ),
          );
        }
        await clock.advance(1);
      }
    } finally {
      this.#driving = false;
    }
  }
}
