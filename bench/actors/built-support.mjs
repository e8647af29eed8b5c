// What the plain-node bench scripts on the built package share (local-built.mjs and the
// profiling drivers in profile/): the Counter entity they ask, the keys, and the closed loop.
// Plain JS on purpose: nothing here goes through a TypeScript loader.
import { Entity } from "@keyhold/actors";

export class Counter extends Entity {
  static type = "counter";
  initialState() {
    return { n: 0 };
  }
  add(by) {
    this.state.n += by;
    return this.state.n;
  }
}

export const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${100_000 + i}`);

/**
 * The same closed loop as load.ts: `concurrency` workers call `op(key)` over KEYS for
 * `durationMs`, and the event loop turns every 5 ms (as in any real process, so heartbeats go
 * out). Resolves to the operations done and the seconds they took.
 */
export async function closedLoop(op, concurrency, durationMs) {
  let cursor = 0;
  let done = 0;
  let gate;
  let lastYield = performance.now();
  const t0 = performance.now();
  const end = t0 + durationMs;
  const turn = () =>
    (gate ??= new Promise((resolve) =>
      setImmediate(() => {
        gate = undefined;
        lastYield = performance.now();
        resolve();
      }),
    ));
  const worker = async () => {
    for (;;) {
      const now = performance.now();
      if (now >= end) return;
      if (now - lastYield >= 5) await turn();
      await op(KEYS[cursor++ % KEYS.length]);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { done, seconds: (performance.now() - t0) / 1000 };
}
