// The dedupe cache (dedupe.ts): a retried id is answered from the cache, never applied twice,
// including ids whose counter lets a new ask skip the lookup. The property compares it, step by
// step, with a plain model of the same two generations that looks every id up.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DedupeCache, DedupeEntry, idCounter } from "../src/dedupe.js";

type Rec = { at: number; reply: Uint8Array | undefined };

/** The cache without the skip: every id looked up in both generations. */
class Model {
  #young = new Map<string, Rec>();
  #old = new Map<string, Rec>();
  #since = 0;
  constructor(
    readonly windowMs: number,
    readonly max: number,
  ) {}
  #get(id: string) {
    return this.#young.get(id) ?? this.#old.get(id);
  }
  /** A new id's record, "busy" (in progress) or the reply. */
  open(id: string, now: number): Rec | "busy" | Uint8Array {
    const e = this.#get(id);
    if (e && now - e.at <= this.windowMs) return e.reply ?? "busy";
    if (now - this.#since >= this.windowMs / 2 || this.#young.size >= this.max / 2) {
      const keep = new Map<string, Rec>();
      for (const [k, v] of this.#old)
        if (v.reply === undefined && now - v.at <= this.windowMs) keep.set(k, v);
      this.#old = this.#young;
      for (const [k, v] of keep) this.#old.set(k, v);
      this.#young = new Map();
      this.#since = now;
    }
    const rec: Rec = { at: now, reply: undefined };
    this.#young.set(id, rec);
    return rec;
  }
  /**
   * By record, as the cache's `close`: an attempt that outlived its id's window completes its
   * own record, not that of a retry recorded anew since.
   */
  complete(rec: Rec, reply: Uint8Array): void {
    rec.reply = reply;
  }
  /** By record too: a late attempt forgets its own record, never a retry's newer one. */
  forget(id: string, rec: Rec): void {
    if (this.#young.get(id) === rec) this.#young.delete(id);
    if (this.#old.get(id) === rec) this.#old.delete(id);
  }
}

const PREFIXES = ["AAAAAAAAAAAA", "bbbbbbbbbbbb", "C-c_C-c_C-c_"];

/** Ids of our routers' shape (some prefixes, counters), and a few of other shapes. */
const anId = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      // Small counters too, so that retries (and retries of expired ids) are common.
      .tuple(fc.constantFrom(...PREFIXES), fc.oneof(fc.nat(12), fc.nat(300)))
      .map(([p, c]) => p + c.toString(36)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom("AAAAAAAAAAAA01", "AAAAAAAAAAAA0", "uuid-like-0000-1111", "AAAAAAAAAAAAZZ"),
  },
);

/** Time between two opens: mostly within a generation, sometimes past a whole window. */
const aStep = fc.oneof(
  { weight: 6, arbitrary: fc.nat(40) },
  { weight: 1, arbitrary: fc.integer({ min: 40, max: 130 }) },
);

/**
 * `i` picks an opened id: among the last few when `recent` (most asks complete soon, and most
 * retries follow their first attempt closely), else any. A retry opens the id again.
 */
type Op =
  | { k: "open"; id: string; dt: number }
  | { k: "next"; p: number; dt: number }
  | { k: "retry"; i: number; dt: number }
  | { k: "complete" | "forget"; i: number; recent: boolean };
const anOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant("open" as const), id: anId, dt: aStep }) },
  // A router's next id: counters in order, past the random ones (the cache's ring path).
  {
    weight: 5,
    arbitrary: fc.record({ k: fc.constant("next" as const), p: fc.nat(PREFIXES.length - 1), dt: fc.nat(3) }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("retry" as const), i: fc.nat(1000), dt: aStep }) },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant("complete" as const), i: fc.nat(1000), recent: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("forget" as const), i: fc.nat(1000), recent: fc.boolean() }),
  },
);

describe("DedupeCache", () => {
  it("reads the counter of our routers' ids, and only of that shape", () => {
    expect(idCounter(`AAAAAAAAAAAA${(123_456).toString(36)}`)).toBe(123_456);
    expect(idCounter("AAAAAAAAAAAA")).toBe(-1);
    expect(idCounter("AAAAAAAAAAAAZ")).toBe(-1);
    expect(idCounter("AAAAAAAAAAAA0")).toBe(0);
    expect(idCounter("AAAAAAAAAAAA01")).toBe(-1); // not the id of counter 1
    expect(idCounter("AAAAAAAAAAAA10")).toBe(36);
    expect(idCounter("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")).toBe(-1);
    expect(idCounter(`AAAAAAAAAAAA${"z".repeat(11)}`)).toBe(-1);
  });

  it("answers a retry from the cache, whether the first came in order or not", () => {
    const c = new DedupeCache(10_000, 1_000);
    const r = new Uint8Array([7]);
    const e = c.open("AAAAAAAAAAAA5", 0);
    expect(e).toBeInstanceOf(DedupeEntry);
    c.close(e as DedupeEntry, r);
    // The same bytes (kept in the cache's reply arena, so a copy of them).
    expect(c.open("AAAAAAAAAAAA5", 1)).toEqual(r);
    // Lower counters arriving later are new, and then remembered too.
    const lower = c.open("AAAAAAAAAAAA3", 2);
    expect(lower).toBeInstanceOf(DedupeEntry);
    expect(c.open("AAAAAAAAAAAA3", 3)).toBeInstanceOf(Promise);
    expect(c.fresh).toBe(1);
  });

  it("remembers an id recorded anew by the swap that drops its prefix's record", () => {
    // P's only id is in the old generation and expired when its retry comes; the retry's
    // insert swaps generations, and that swap drops P's record (none of P's ids is left in the
    // old generation). The id just recorded again must still be found by the next retry.
    const c = new DedupeCache(100, 1_000);
    const first = c.open("PPPPPPPPPPPP1", 0);
    c.close(first as DedupeEntry, new Uint8Array([1]));
    c.open("QQQQQQQQQQQQ1", 50); // swap: P1 is in the old generation
    const again = c.open("PPPPPPPPPPPP1", 101); // P1 expired: recorded anew, and a swap
    expect(again).toBeInstanceOf(DedupeEntry);
    const r = new Uint8Array([2]);
    c.close(again as DedupeEntry, r);
    expect(c.open("PPPPPPPPPPPP1", 102)).toEqual(r);
  });

  it("forgets only the entry it is given, not a newer retry's entry for the same id (issue 9)", () => {
    // The first attempt of X hangs past the window; a retry of X is recorded anew (its own
    // entry) and is still being handled when the first attempt ends in "moved". Forgetting the
    // first attempt must leave the retry's entry: a third attempt waits for it, never runs.
    const c = new DedupeCache(100, 1_000);
    const first = c.open("XXXXXXXXXXXX7", 0);
    expect(first).toBeInstanceOf(DedupeEntry);
    const retry = c.open("XXXXXXXXXXXX7", 101);
    expect(retry).toBeInstanceOf(DedupeEntry);
    expect(retry).not.toBe(first);
    c.forget(first as DedupeEntry, new Uint8Array([9]));
    expect(c.open("XXXXXXXXXXXX7", 102)).toBeInstanceOf(Promise);
    const r = new Uint8Array([3]);
    c.close(retry as DedupeEntry, r);
    expect(c.open("XXXXXXXXXXXX7", 103)).toEqual(r);
    // Forgetting the retry's own entry does let the next attempt run.
    const third = c.open("XXXXXXXXXXXX8", 104);
    c.forget(third as DedupeEntry, new Uint8Array([9]));
    expect(c.open("XXXXXXXXXXXX8", 105)).toBeInstanceOf(DedupeEntry);
  });

  it("keeps thousands of in-order ids of one prefix, and carries one in progress through swaps", () => {
    const c = new DedupeCache(1_000, 1_000_000);
    const id = (n: number) => `RRRRRRRRRRRR${n.toString(36)}`;
    const entries: DedupeEntry[] = [];
    for (let n = 1; n <= 5_000; n++) entries.push(c.open(id(n), 0) as DedupeEntry);
    expect(c.fresh).toBe(5_000);
    for (const [i, e] of entries.entries()) if (i !== 9) c.close(e, new Uint8Array([i & 255, i >> 8]));
    expect(c.open(id(1), 1)).toEqual(new Uint8Array([0, 0]));
    expect(c.open(id(4_321), 1)).toEqual(new Uint8Array([4_320 & 255, 4_320 >> 8]));
    expect(c.open(id(10), 1)).toBeInstanceOf(Promise); // still in progress
    // Swaps at 500 and 1000 ms: the finished ids go, the one in progress stays for its window.
    c.open(id(5_001), 500);
    c.open(id(5_002), 1_000);
    expect(c.open(id(10), 1_000)).toBeInstanceOf(Promise);
    expect(c.open(id(1), 1_000)).toBeInstanceOf(DedupeEntry);
    // Past its window it is forgotten like any other id, and a retry runs again.
    c.open(id(5_003), 1_500);
    expect(c.open(id(10), 1_501)).toBeInstanceOf(DedupeEntry);
    const r = new Uint8Array([1]);
    c.close(entries[9]!, r); // the first attempt ends late: its own entry, not the retry's
    expect(c.open(id(10), 1_502)).toBeInstanceOf(Promise);
  });

  it("property: gives the same answers as a cache that looks every id up", () => {
    fc.assert(
      fc.property(fc.array(anOp, { maxLength: 600 }), fc.constantFrom(8, 40, 1_000), (ops, max) => {
        const c = new DedupeCache(100, max);
        const m = new Model(100, max);
        const opened: { id: string; e: DedupeEntry | undefined; rec: Rec }[] = [];
        let now = 0;
        let replies = 0;
        const next = PREFIXES.map(() => 400);
        const nextId = (p: number) => {
          const n = next[p]!;
          next[p] = n + 1;
          return PREFIXES[p]! + n.toString(36);
        };
        const pick = (i: number, recent: boolean) => {
          const n = opened.length;
          return opened[recent ? n - 1 - (i % Math.min(n, 4)) : i % n]!;
        };
        for (const op of ops) {
          if (op.k === "retry" && opened.length === 0) continue;
          if (op.k === "open" || op.k === "retry" || op.k === "next") {
            const id = op.k === "open" ? op.id : op.k === "next" ? nextId(op.p) : pick(op.i, true).id;
            now += op.dt;
            const got = c.open(id, now);
            const want = m.open(id, now);
            if (want instanceof Uint8Array) expect(got).toEqual(want);
            else if (want === "busy") expect(got).toBeInstanceOf(Promise);
            else {
              expect(got).toBeInstanceOf(DedupeEntry);
              opened.push({ id, e: got as DedupeEntry, rec: want });
            }
            expect(c.size).toBeLessThanOrEqual(2 * max + opened.length);
          } else if (opened.length > 0) {
            const o = pick(op.i, op.recent);
            if (o.e === undefined) continue;
            // Each reply its own bytes (the cache returns a copy of them: compared by value).
            // Some over the arena's size limit (kept as they are).
            const reply = new Uint8Array(op.i % 7 === 0 ? 1_500 : 4);
            new DataView(reply.buffer).setUint32(0, ++replies);
            if (op.k === "complete") {
              c.close(o.e, reply);
              m.complete(o.rec, reply);
            } else {
              c.forget(o.e, reply);
              m.forget(o.id, o.rec);
            }
            o.e = undefined;
          }
        }
        // A prefix is tracked only while the cache may hold one of its ids.
        expect(c.senders).toBeLessThanOrEqual(PREFIXES.length);
      }),
      { numRuns: 1_000 },
    );
  });
});
