// A closed-loop load driver: `concurrency` workers each keep one operation in flight, taking
// keys round-robin from a shared cursor, and every completion's latency is recorded.
import { performance } from "node:perf_hooks";

export type KeyedOp = (key: string) => Promise<unknown>;

export interface LoadRun {
  readonly completed: number;
  readonly seconds: number;
  /** Completions per second over the run. */
  readonly rate: number;
  /** One latency per completion, ms. */
  readonly latencies: Float64Array;
}

/** Latencies in a growable Float64Array: no boxing, no per-sample allocation. */
class Samples {
  #buf = new Float64Array(1 << 16);
  #n = 0;

  add(v: number): void {
    if (this.#n === this.#buf.length) {
      const next = new Float64Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.#n++] = v;
  }

  get length(): number {
    return this.#n;
  }

  values(): Float64Array {
    return this.#buf.subarray(0, this.#n);
  }
}

/**
 * Runs `op` with `concurrency` operations in flight for about `durationMs`. A shared key cursor
 * means the keys in flight at any moment are the last `concurrency` ones handed out: with more
 * keys than workers, no two concurrent operations hit the same key.
 *
 * A worker starts its next operation the moment the previous one completes, so one clock read
 * per completion times both: it ends one operation and starts the next. That halves the timing
 * overhead (about 50 ns a read here), which matters at a few hundred thousand ops/s.
 */
/** How long a closed loop may run without letting the event loop turn. */
const YIELD_MS = 5;

export async function closedLoop(
  op: KeyedOp,
  keys: readonly string[],
  concurrency: number,
  durationMs: number,
): Promise<LoadRun> {
  if (keys.length <= concurrency) throw new Error(`need more keys (${keys.length}) than workers`);
  const samples = new Samples();
  let cursor = 0;
  // An op that completes in microtasks (the local fast path) never lets timers or I/O run: a
  // loop over it would starve the node's heartbeats, and after ttl - heartbeat the node rightly
  // stops acting as owner (issue 8), which measures the slow path instead. So every YIELD_MS
  // all workers wait for one macrotask, as any real process lets its event loop turn.
  let lastYield = performance.now();
  let gate: Promise<void> | undefined;
  const turn = (): Promise<void> =>
    (gate ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        gate = undefined;
        lastYield = performance.now();
        resolve();
      }),
    ));
  const t0 = performance.now();
  const endAt = t0 + durationMs;
  const worker = async (): Promise<void> => {
    let last = performance.now();
    while (last < endAt) {
      const key = keys[cursor]!;
      cursor = cursor + 1 === keys.length ? 0 : cursor + 1;
      await op(key);
      const now = performance.now();
      samples.add(now - last);
      last = now;
      if (now - lastYield > YIELD_MS) {
        await turn();
        last = performance.now();
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return { completed: samples.length, seconds, rate: samples.length / seconds, latencies: samples.values() };
}

/** Percentile (0..100) of sorted values, nearest rank. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Concatenates and sorts latency samples of several runs. */
export function pooled(runs: readonly LoadRun[]): Float64Array {
  const all = new Float64Array(runs.reduce((n, r) => n + r.latencies.length, 0));
  let at = 0;
  for (const r of runs) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  return all.sort();
}
