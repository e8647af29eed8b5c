// The latency histogram behind `keyhold stats` p50/p99: a quantile is the upper bound of the
// bucket holding it, never below the true value and at most one bucket (about 19%) above it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LatencyHistogram } from "../src/latency.js";

describe("LatencyHistogram", () => {
  it("is empty until something is recorded", () => {
    const h = new LatencyHistogram();
    expect(LatencyHistogram.quantile(h.counts, 0.5)).toBeNull();
    expect(h.count).toBe(0);
  });

  it("quantiles are within one bucket above the exact ones", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.002, max: 60_000, noNaN: true }), { minLength: 1, maxLength: 500 }),
        fc.constantFrom(0.5, 0.9, 0.99),
        (samples, q) => {
          const h = new LatencyHistogram();
          for (const s of samples) h.record(s);
          const exact = [...samples].sort((a, b) => a - b)[Math.max(0, Math.ceil(q * samples.length) - 1)]!;
          const got = LatencyHistogram.quantile(h.counts, q)!;
          expect(h.count).toBe(samples.length);
          expect(got).toBeGreaterThanOrEqual(exact * 0.999);
          expect(got).toBeLessThanOrEqual(exact * 1.19 + 0.001);
        },
      ),
      { numRuns: 300 },
    );
  });
});
