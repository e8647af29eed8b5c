// The lease rules: TTL, skew, last-writer-wins, tombstones of graceful leaves, sweeping.
import { LeaseTable } from "@keyhold/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const T0 = 1_700_000_000_000;

describe("LeaseTable", () => {
  it("a member is live while now - emitted <= ttl, and swept after", () => {
    const t = new LeaseTable(6000, 5000);
    expect(t.observe("a", T0, T0)).toBe("accepted");
    expect(t.isLive("a", T0 + 6000)).toBe(true);
    expect(t.live(T0 + 6000)).toEqual(["a"]);
    expect(t.isLive("a", T0 + 6001)).toBe(false);
    expect(t.live(T0 + 6001)).toEqual([]);
    expect(t.nextExpiry()).toBe(T0 + 6001);
    expect(t.sweep(T0 + 6001)).toEqual(["a"]);
    expect(t.size).toBe(0);
  });

  it("rejects heartbeats from more than skewMs in the future, accepts up to it", () => {
    const t = new LeaseTable(6000, 5000);
    expect(t.observe("a", T0 + 5001, T0)).toBe("future");
    expect(t.observe("a", T0 + 5000, T0)).toBe("accepted");
  });

  it("rejects heartbeats that are already expired on arrival", () => {
    const t = new LeaseTable(6000, 5000);
    expect(t.observe("a", T0 - 6001, T0)).toBe("expired");
    expect(t.live(T0)).toEqual([]);
  });

  it("keeps the newest heartbeat per member (last writer wins)", () => {
    const t = new LeaseTable(6000, 5000);
    expect(t.observe("a", T0 + 10, T0 + 10)).toBe("accepted");
    expect(t.observe("a", T0 + 5, T0 + 11)).toBe("stale");
    expect(t.observe("a", T0 + 10, T0 + 11)).toBe("stale");
    expect(t.leases()).toEqual([["a", T0 + 10]]);
  });

  it("a graceful leave drops the member and blocks heartbeats emitted before it", () => {
    const t = new LeaseTable(6000, 5000);
    t.observe("a", T0, T0);
    expect(t.leave("a", T0 + 100, T0 + 100)).toBe(true);
    expect(t.live(T0 + 100)).toEqual([]);
    expect(t.observe("a", T0 + 50, T0 + 101)).toBe("left");
    // a restarted incarnation beats after the leave and is accepted
    expect(t.observe("a", T0 + 200, T0 + 200)).toBe("accepted");
    // and the old leave, replayed, does not remove it
    expect(t.leave("a", T0 + 100, T0 + 201)).toBe(false);
    expect(t.live(T0 + 201)).toEqual(["a"]);
  });

  it("tombstones are swept once no heartbeat they guard against could be accepted", () => {
    const t = new LeaseTable(1000, 500);
    t.leave("a", T0, T0);
    expect(t.tombstones()).toHaveLength(1);
    t.sweep(T0 + 1500);
    expect(t.tombstones()).toHaveLength(1);
    t.sweep(T0 + 1501);
    expect(t.tombstones()).toHaveLength(0);
  });

  it("for any sequence of heartbeats, the live set is exactly the members whose newest beat was received within ttl", () => {
    const beat = fc.record({
      id: fc.constantFrom("a", "b", "c", "d"),
      at: fc.integer({ min: 0, max: 20_000 }),
    });
    fc.assert(
      fc.property(fc.array(beat, { maxLength: 60 }), fc.integer({ min: 0, max: 25_000 }), (beats, nowOff) => {
        const ttl = 3000;
        const skew = 1000;
        const t = new LeaseTable(ttl, skew);
        const newest = new Map<string, { at: number; rx: number }>();
        let now = T0;
        // The monotonic clock runs from another origin: only differences may matter.
        const mono = (wall: number) => wall - T0 + 42;
        for (const b of beats) {
          now = Math.max(now, T0 + b.at - 500);
          const v = t.observe(b.id, T0 + b.at, now, mono(now));
          if (v === "accepted") {
            expect(T0 + b.at).toBeGreaterThan(newest.get(b.id)?.at ?? -1);
            newest.set(b.id, { at: T0 + b.at, rx: now });
          }
        }
        const at = Math.max(now, T0 + nowOff);
        const expected = [...newest]
          .filter(([, e]) => at - e.rx <= ttl)
          .map(([id]) => id)
          .sort();
        expect(t.live(mono(at))).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});
