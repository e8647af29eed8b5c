// Properties of HRW placement and of the precomputed Ring.
import { ownerOf, ownersOf, partitionOf, Ring } from "@keyhold/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const memberId = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
const members = fc.uniqueArray(memberId, { minLength: 1, maxLength: 20 });
const key = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.uint8Array({ maxLength: 40 }));
const ringSize = fc.integer({ min: 1, max: 512 });
const params = { numRuns: 200, verbose: 1 } as const;

describe("placement", () => {
  it("is the same whatever order the members were learned in", () => {
    fc.assert(
      fc.property(members, key, ringSize, fc.integer(), (ms, k, rs, seed) => {
        const shuffled = [...ms].sort(
          (a, b) => ((a.charCodeAt(0) * seed) % 7) - ((b.charCodeAt(0) * seed) % 7),
        );
        expect(new Ring(ms, rs).place(k)).toBe(new Ring(shuffled, rs).place(k));
        expect(new Ring(ms, rs).owners(k, ms.length)).toEqual(
          new Ring([...ms].reverse(), rs).owners(k, ms.length),
        );
        expect(ownerOf(k, shuffled, rs)).toBe(new Ring(ms, rs).place(k));
      }),
      params,
    );
  });

  it("Ring agrees with the per-call functions for every partition", () => {
    fc.assert(
      fc.property(members, ringSize, fc.integer({ min: 0, max: 25 }), (ms, rs, n) => {
        const ring = new Ring(ms, rs);
        for (let p = 0; p < rs; p++) {
          const k = `probe-${p}`;
          expect(ring.owners(k, n)).toEqual(ownersOf(k, ms, n, rs));
          expect(ring.partition(k)).toBe(partitionOf(k, rs));
        }
      }),
      { ...params, numRuns: 50 },
    );
  });

  it("owners(key, n) starts with place(key), is a prefix of owners(key, n+1), and is distinct", () => {
    fc.assert(
      fc.property(members, key, ringSize, (ms, k, rs) => {
        const ring = new Ring([...ms, ...ms], rs);
        expect(ring.owners(k, 1)[0]).toBe(ring.place(k));
        for (let n = 0; n <= ms.length + 1; n++) {
          const a = ring.owners(k, n);
          const b = ring.owners(k, n + 1);
          expect(b.slice(0, a.length)).toEqual(a);
          expect(new Set(a).size).toBe(a.length);
          expect(a.length).toBe(Math.min(n, ms.length));
        }
      }),
      params,
    );
  });

  it("adding a member moves partitions only to it; removing one moves only its partitions", () => {
    fc.assert(
      fc.property(members, memberId, ringSize, (ms, extra, rs) => {
        fc.pre(!ms.includes(extra));
        const before = new Ring(ms, rs);
        const after = new Ring([...ms, extra], rs);
        for (let p = 0; p < rs; p++) {
          const a = before.ownerOfPartition(p);
          const b = after.ownerOfPartition(p);
          if (a !== b) expect(b).toBe(extra);
        }
        // and back: removing `extra` moves exactly its partitions, each to its next-best owner
        for (let p = 0; p < rs; p++) {
          const b = after.ownerOfPartition(p);
          if (b !== extra) expect(before.ownerOfPartition(p)).toBe(b);
          else expect(before.ownerOfPartition(p)).toBe(after.ownersOfPartition(p, 2)[1]);
        }
      }),
      params,
    );
  });

  it("spreads partitions over members roughly evenly", () => {
    const ms = Array.from({ length: 8 }, (_, i) => `node-${i}`);
    const ring = new Ring(ms, 1024);
    const counts = ms.map((m) => ring.partitionsOf(m).length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1024);
    for (const c of counts) {
      expect(c).toBeGreaterThan(1024 / 8 / 2);
      expect(c).toBeLessThan((1024 / 8) * 2);
    }
  });

  it("an empty ring places nothing", () => {
    const ring = new Ring([], 64);
    expect(ring.place("k")).toBeUndefined();
    expect(ring.owners("k", 3)).toEqual([]);
    expect(ring.partitionsOf("x")).toEqual([]);
  });

  it("a string key and its UTF-8 bytes place the same", () => {
    fc.assert(
      fc.property(members, fc.string({ unit: "binary" }), ringSize, (ms, s, rs) => {
        const ring = new Ring(ms, rs);
        expect(ring.place(new TextEncoder().encode(s))).toBe(ring.place(s));
      }),
      params,
    );
  });
});
