// Joining step by step (ShardNodeOptions.joinStepPartitions): a joining member starts with an
// admission front of 0 (it owns nothing, and is a replica of what it will own) and moves the
// front up one step at a time, each step admitting the next `step` partitions it wins by HRW.
// Every node and client places with the fronts the members advertise in their heartbeats
// (Ring, placement.ts admitted), so each step is an ordinary view change of at most `step`
// partitions, handed off like any other. The front is a partition number, not a count, so
// what is admitted does not change when other members come or go during the join.

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

/** What one step needs from ShardNode. */
export interface JoinStepContext {
  /** This node's front, undefined once uncapped (Membership.admission). */
  readonly front: number | undefined;
  readonly step: number;
  readonly ringSize: number;
  /** The partitions this node wins by plain HRW (Ring.partitionsWonBy). */
  readonly won: readonly number[];
  /** The partitions this node owns now. */
  readonly owned: readonly number[];
  /** Whether the layer above serves every partition in `owned` (the previous steps are done). */
  readonly ready: (owned: readonly number[]) => boolean;
}

/** The front to move to now, or undefined to stay (uncapped already, or a step still moving). */
export function stepFront(c: JoinStepContext): number | undefined {
  if (c.front === undefined || !c.ready(c.owned)) return undefined;
  return nextFront(c.won, c.front, c.step, c.ringSize);
}
