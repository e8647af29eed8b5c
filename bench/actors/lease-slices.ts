// A closed loop that switches between two modes every time the event loop turns (about every
// 5 ms), for an A/B of something as cheap as the lease check on a shared machine: load that
// drifts over seconds hits both modes alike, where back-to-back runs of a few hundred ms each
// still see it differently. Only for operations that complete in microtasks (local asks):
// then every worker is parked at the turn when the mode changes, so no operation straddles two.
import { performance } from "node:perf_hooks";
import type { KeyedOp } from "./load.js";

/** How long the workers run between turns of the event loop, as in load.ts. */
const YIELD_MS = 5;

export interface SliceTotals {
  /** Completions, ms and CPU µs (user + system) spent in slices of each mode. */
  readonly completed: [number, number];
  readonly ms: [number, number];
  readonly cpuUs: [number, number];
}

/** Runs `op` over `keys` for `durationMs`, mode 0 and 1 alternating slice by slice. */
export async function slicedLoop(
  op: KeyedOp,
  keys: readonly string[],
  concurrency: number,
  durationMs: number,
  setMode: (mode: 0 | 1) => void,
): Promise<SliceTotals> {
  const totals: SliceTotals = { completed: [0, 0], ms: [0, 0], cpuUs: [0, 0] };
  let mode: 0 | 1 = 0;
  setMode(mode);
  let cursor = 0;
  let done = 0;
  let sliceAt = performance.now();
  let cpuAt = process.cpuUsage();
  let gate: Promise<void> | undefined;
  const turn = (): Promise<void> =>
    (gate ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        // Every worker waits here: close the slice, switch the mode, open the next one.
        const now = performance.now();
        const cpu = process.cpuUsage(cpuAt);
        totals.completed[mode] += done;
        totals.ms[mode] += now - sliceAt;
        totals.cpuUs[mode] += cpu.user + cpu.system;
        done = 0;
        mode = mode === 0 ? 1 : 0;
        setMode(mode);
        gate = undefined;
        cpuAt = process.cpuUsage();
        sliceAt = performance.now();
        resolve();
      }),
    ));
  const endAt = performance.now() + durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < endAt) {
      const key = keys[cursor]!;
      cursor = cursor + 1 === keys.length ? 0 : cursor + 1;
      await op(key);
      done++;
      if (performance.now() - sliceAt > YIELD_MS) await turn();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await turn(); // closes the last slice
  return totals;
}
