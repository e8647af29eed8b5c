// Joining step by step (ShardNodeOptions.joinStepPartitions): a joining member starts with an
// admission front of 0 (it owns nothing, and is a replica of what it will own) and moves the
// front up one step at a time, each step admitting the next `step` partitions it wins by HRW.
// Every node and client places with the fronts the members advertise in their heartbeats
// (Ring, placement.ts admitted), so each step is an ordinary view change of at most `step`
// partitions, handed off like any other. The front is a partition number, not a count, so
// what is admitted does not change when other members come or go during the join.
// The default step, "auto", is a quarter of what the member wins (JOIN_STEPS steps), so a join
// or a leave takes about as many heartbeats in a 64-partition ring as in a 4096-partition one.

/** Steps a join (or a graceful leave) takes with joinStepPartitions "auto". */
export const JOIN_STEPS = 4;

/** How many partitions a step moves: `step`, or with "auto" a JOIN_STEPS-th of `won` (at least 1). */
export function stepSize(step: number | "auto", won: number): number {
  return step === "auto" ? Math.max(1, Math.ceil(won / JOIN_STEPS)) : step;
}

/**
 * The front after one more step: past the next `step` partitions of `won` (ascending, the
 * partitions the member wins by HRW) at or above `front`; `ringSize` once no more than `step`
 * of them remain (the member is then uncapped).
 */
export function nextFront(won: readonly number[], front: number, step: number, ringSize: number): number {
  const ahead = won.filter((p) => p >= front);
  if (ahead.length <= step) return ringSize;
  return ahead[step - 1]! + 1;
}

/**
 * The front after one step of a stepwise release (before a graceful leave): below the top `step`
 * partitions of `owned` (all below the current front), or 0 once no more than `step` remain.
 */
export function lowerFront(owned: readonly number[], step: number): number {
  const sorted = [...owned].sort((a, b) => a - b);
  return sorted.length <= step ? 0 : sorted[sorted.length - step]!;
}

/** A ShardNode's steps: up while it joins, down before it leaves, one per heartbeat at most. */
export class JoinStepper {
  /** Partitions per step, or "auto" (stepSize); 0: joins and leaves at once. */
  readonly step: number | "auto";
  readonly #ringSize: number;
  /** Whether the layer above serves what this node owns (the previous join step is done). */
  ready: (owned: readonly number[]) => boolean = () => true;
  #leave: { readonly ready: (owned: readonly number[]) => boolean; readonly done: () => void } | undefined;

  constructor(step: number | "auto", ringSize: number) {
    this.step = step;
    this.#ringSize = ringSize;
  }

  /** The front to move to at this heartbeat, or undefined to stay. */
  next(front: number | undefined, won: readonly number[], owned: readonly number[]): number | undefined {
    const leave = this.#leave;
    if (leave === undefined) {
      if (front === undefined || !this.ready(owned)) return undefined;
      return nextFront(won, front, stepSize(this.step, won.length), this.#ringSize);
    }
    // Releasing: each step waits until the previous one was handed off.
    if (!leave.ready(owned)) return undefined;
    if (owned.length === 0 && front === 0) {
      this.stop();
      return undefined;
    }
    // `won` (not what is left of `owned`) sizes the step, so a leave takes JOIN_STEPS steps too.
    return lowerFront(owned, stepSize(this.step, Math.max(won.length, owned.length)));
  }

  /** Starts releasing; resolves once this node owns nothing and `ready` says it was handed off. */
  releaseAll(ready: (owned: readonly number[]) => boolean): Promise<void> {
    this.stop();
    return new Promise((done) => {
      this.#leave = { ready, done };
    });
  }

  /** Ends a release (done, or the node leaves anyway). */
  stop(): void {
    this.#leave?.done();
    this.#leave = undefined;
  }
}
