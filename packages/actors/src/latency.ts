// The cheap histogram of handling latencies the hot path records into (dispatch.ts); admin
// reports (admin.ts) turn it into p50/p99 over the last seconds.
// Log-linear buckets over microseconds: four per power of two (about 19% wide), from 1 µs to
// about an hour. Recording is a log2, a multiply and an increment.
const BUCKETS = 128;
const PER_OCTAVE = 4;

/** Cumulative counts of handling latencies. */
export class LatencyHistogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;

  record(ms: number): void {
    const us = ms * 1000;
    const i = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log2(us) * PER_OCTAVE));
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count++;
  }

  /** The upper bound in ms of the bucket holding quantile `q` of `delta`; null when empty. */
  static quantile(delta: Float64Array, q: number): number | null {
    let total = 0;
    for (const c of delta) total += c;
    if (total === 0) return null;
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (let i = 0; i < delta.length; i++) {
      seen += delta[i] ?? 0;
      if (seen >= rank) return Math.ceil(2 ** (i / PER_OCTAVE)) / 1000;
    }
    return null;
  }
}
