// The dedupe cache (dedupe.ts): a retried id is answered from the cache, never applied twice,
// including ids whose counter lets a new ask skip the lookup. The property compares it, step by
// step, with a plain model of the same two generations that looks every id up.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DedupeCache, DedupeEntry, idCounter } from "../src/dedupe.js";

/** The cache without the skip: every id looked up in both generations. */
class Model {
  #young = new Map<string, { at: number; reply: Uint8Array | undefined }>();
  #old = new Map<string, { at: number; reply: Uint8Array | undefined }>();
  #since = 0;
  constructor(
    readonly windowMs: number,
    readonly max: number,
  ) {}
  #get(id: string) {
    return this.#young.get(id) ?? this.#old.get(id);
  }
  /** "new", "busy" (in progress) or the reply. */
  open(id: string, now: number): "new" | "busy" | Uint8Array {
    const e = this.#get(id);
    if (e && now - e.at <= this.windowMs) return e.reply ?? "busy";
    if (now - this.#since >= this.windowMs / 2 || this.#young.size >= this.max / 2) {
      const keep = new Map<string, { at: number; reply: Uint8Array | undefined }>();
      for (const [k, v] of this.#old)
        if (v.reply === undefined && now - v.at <= this.windowMs) keep.set(k, v);
      this.#old = this.#young;
      for (const [k, v] of keep) this.#old.set(k, v);
      this.#young = new Map();
      this.#since = now;
    }
    this.#young.set(id, { at: now, reply: undefined });
    return "new";
  }
  complete(id: string, reply: Uint8Array): void {
    const e = this.#get(id);
    if (e) e.reply = reply;
  }
  forget(id: string): void {
    this.#young.delete(id);
    this.#old.delete(id);
  }
}

const PREFIXES = ["AAAAAAAAAAAA", "bbbbbbbbbbbb", "C-c_C-c_C-c_"];

/** Ids of our routers' shape (some prefixes, counters), and a few of other shapes. */
const anId = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(fc.constantFrom(...PREFIXES), fc.nat(300)).map(([p, c]) => p + c.toString(36)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom("AAAAAAAAAAAA01", "AAAAAAAAAAAA0", "uuid-like-0000-1111", "AAAAAAAAAAAAZZ"),
  },
);

type Op = { k: "open"; id: string; dt: number } | { k: "complete" | "forget"; i: number };
const anOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant("open" as const), id: anId, dt: fc.nat(40) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("complete" as const), i: fc.nat(1000) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("forget" as const), i: fc.nat(1000) }) },
);

describe("DedupeCache", () => {
  it("reads the counter of our routers' ids, and only of that shape", () => {
    expect(idCounter(`AAAAAAAAAAAA${(123_456).toString(36)}`)).toBe(123_456);
    expect(idCounter("AAAAAAAAAAAA")).toBe(-1);
    expect(idCounter("AAAAAAAAAAAAZ")).toBe(-1);
    expect(idCounter("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")).toBe(-1);
    expect(idCounter(`AAAAAAAAAAAA${"z".repeat(11)}`)).toBe(-1);
  });

  it("answers a retry from the cache, whether the first came in order or not", () => {
    const c = new DedupeCache(10_000, 1_000);
    const r = new Uint8Array([7]);
    const e = c.open("AAAAAAAAAAAA5", 0);
    expect(e).toBeInstanceOf(DedupeEntry);
    c.close(e as DedupeEntry, r);
    expect(c.open("AAAAAAAAAAAA5", 1)).toBe(r);
    // Lower counters arriving later are new, and then remembered too.
    const lower = c.open("AAAAAAAAAAAA3", 2);
    expect(lower).toBeInstanceOf(DedupeEntry);
    expect(c.open("AAAAAAAAAAAA3", 3)).toBeInstanceOf(Promise);
    expect(c.fresh).toBe(1);
  });

  it("property: gives the same answers as a cache that looks every id up", () => {
    fc.assert(
      fc.property(fc.array(anOp, { maxLength: 400 }), fc.constantFrom(8, 40, 1_000), (ops, max) => {
        const c = new DedupeCache(100, max);
        const m = new Model(100, max);
        const opened: { id: string; e: DedupeEntry | undefined }[] = [];
        let now = 0;
        for (const op of ops) {
          if (op.k === "open") {
            now += op.dt;
            const got = c.open(op.id, now);
            const want = m.open(op.id, now);
            if (want === "new") {
              expect(got).toBeInstanceOf(DedupeEntry);
              opened.push({ id: op.id, e: got as DedupeEntry });
            } else if (want === "busy") expect(got).toBeInstanceOf(Promise);
            else expect(got).toBe(want);
            expect(c.size).toBeLessThanOrEqual(2 * max + opened.length);
          } else if (opened.length > 0) {
            const o = opened[op.i % opened.length]!;
            if (o.e === undefined) continue;
            const reply = new Uint8Array([op.i & 255]);
            if (op.k === "complete") {
              c.close(o.e, reply);
              m.complete(o.id, reply);
            } else {
              c.forget(o.id, reply);
              m.forget(o.id);
            }
            o.e = undefined;
          }
        }
        // A prefix is tracked only while the cache may hold one of its ids.
        expect(c.senders).toBeLessThanOrEqual(PREFIXES.length);
      }),
      { numRuns: 300 },
    );
  });
});
