// Keeps a flood of local asks from starving the event loop. A local ask (a caller on the node
// that owns the key) is handed to the entity and answered through promises alone: no I/O, no
// timer. A loop of them, or many callers awaiting them in turn, runs as one unbroken chain of
// microtasks, and nothing else gets a turn: not the heartbeat timer, not the socket that brings
// the heartbeat's echo. After ttl - skew of that, the node's own lease lapses and it fences
// itself, although nothing is wrong but its caller (seen in the 1M-entity memory benchmark).
//
// It is hooked once, at the dispatcher's entry (dispatch.ts `askHere` and `deliver`), so it sees
// local asks, the router's local hand-over and messages from other nodes alike (those arrive
// through socket reads and cannot starve the loop, but counting them too costs a counter).
//
// The guard counts hand-overs and, every CHECK_EVERY of them, looks at the monotonic
// clock. When more than `sliceMs` passed since the event loop last gave it a turn, it defers
// this hand-over and every later one, in order, to a setImmediate: the chain of microtasks
// ends, the loop runs its timers and reads its sockets, and the deferred hand-overs continue.
// The cost on the fast path is a counter and, once per CHECK_EVERY, a clock read; a yield
// costs one setImmediate per slice. Order is kept: while deferring, every hand-over queues
// behind the deferred ones.
//
// It is a real-time concern, so it reads performance.now(), not the node's clock (a virtual
// clock in simulations does not move while a flood runs, and nothing starves there).
import { performance } from "node:perf_hooks";

/** Local hand-overs between two looks at the clock. */
const CHECK_EVERY = 256;

export class TurnGuard {
  readonly #sliceMs: number;
  readonly #now: () => number;
  #count = 0;
  #since: number;
  #deferred: (() => void)[] | undefined;
  /** Times the guard gave the event loop a turn. */
  yields = 0;

  constructor(sliceMs: number, now: () => number = () => performance.now()) {
    if (!(sliceMs > 0)) throw new RangeError(`TurnGuard: sliceMs must be > 0, got ${sliceMs}`);
    this.#sliceMs = sliceMs;
    this.#now = now;
    this.#since = now();
  }

  /**
   * True when the hand-over may run now. False when the current chain of microtasks ran past
   * the slice (or a yield is under way): then the caller hands it to `defer`, which runs it
   * after the event loop had a turn, behind the hand-overs deferred before it.
   */
  pass(): boolean {
    if (this.#deferred !== undefined) return false;
    if (++this.#count < CHECK_EVERY) return true;
    this.#count = 0;
    if (this.#now() - this.#since <= this.#sliceMs) return true;
    this.#deferred = [];
    this.yields++;
    setImmediate(this.#flush);
    return false;
  }

  /** Queues a hand-over that `pass` refused; it runs after the event loop's next turn. */
  defer(fn: () => void): void {
    if (this.#deferred === undefined) fn();
    else this.#deferred.push(fn);
  }

  readonly #flush = (): void => {
    const q = this.#deferred!;
    this.#deferred = undefined;
    this.#since = this.#now();
    this.#count = 0;
    // A hand-over run here may trip the slice again (a long queue): the rest of `q` then waits
    // for the next turn, ahead of what was deferred meanwhile, so the order holds.
    for (let i = 0; i < q.length; i++) {
      const later = this.#deferred as (() => void)[] | undefined;
      if (later !== undefined) {
        this.#deferred = q.slice(i).concat(later);
        return;
      }
      q[i]!();
    }
  };
}
