// A virtual clock for deterministic tests of timing logic: time moves only when the test says.
import type { Clock } from "@keyhold/core";

interface Timer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
}

/** Lets every pending promise callback run before the next timer fires. */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  #jumped = 0;
  #timers: Timer[] = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Monotonic time: moves with advance() but not with jump(). */
  monoNow(): number {
    return this.#now - this.#jumped;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const t = { id: ++this.#seq, due: this.#now + Math.max(0, ms), fn };
    this.#timers.push(t);
    return t.id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle !== "number") return;
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Number of timers not yet fired. */
  get pending(): number {
    return this.#timers.length;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order of due time (then creation), and
   * letting promise callbacks settle after each one.
   */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await flushMicrotasks();
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers) {
        if (
          t.due <= target &&
          (next === undefined || t.due < next.due || (t.due === next.due && t.id < next.id))
        ) {
          next = t;
        }
      }
      if (!next) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = Math.max(this.#now, next.due);
      next.fn();
      await flushMicrotasks();
    }
    this.#now = target;
    await flushMicrotasks();
  }

  /** Moves the wall clock without firing timers (a clock jump on one machine). */
  jump(ms: number): void {
    this.#now += ms;
    this.#jumped += ms;
  }
}
