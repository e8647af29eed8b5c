// batch-codec.ts readOkBatch, the fast path of a reply batch: where it reads a batch it reads
// what decodeReplyBatch reads, and it leaves every other batch (another reply, a nested result,
// malformed or mangled bytes) to decodeReplyBatch, which counts and drops what is malformed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeOk } from "../src/ask-codec.js";
import { decodeReplyBatch, EnvelopeWriter, readOkBatch } from "../src/batch-codec.js";
import { encode, isError, packr } from "../src/wire.js";

const scalar = fc.oneof(
  fc.integer(),
  fc.constantFrom(0x7f, 0x80, 0xffff, 0x10000, 0xffffffff, -0x20, -0x21, -0x8001, -0x80000000, 2 ** 40),
  fc.double(),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 10 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
);
const q = fc.oneof(
  fc.integer({ min: 1, max: 0x7f }),
  fc.integer({ min: 1, max: 2 ** 32 - 1 }),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
);

function batchOf(entries: readonly (readonly [number, Uint8Array])[]): Uint8Array {
  const list = { qs: entries.map((e) => e[0]), data: entries.map((e) => e[1]), bytes: 0 };
  list.bytes = entries.reduce((n, e) => n + e[1].length + 10, 0);
  return new EnvelopeWriter().write(list, undefined);
}

/** readOkBatch's answer, if any, as decodeReplyBatch's: `ok` replies, nothing malformed. */
function expectSameAsFull(data: Uint8Array): boolean {
  const fast = readOkBatch(data);
  if (fast === undefined) return false;
  const full = decodeReplyBatch(data);
  if (isError(full)) throw new Error(`readOkBatch read a batch the full decoder refuses: ${full.error}`);
  expect(full.malformed).toBe(0);
  expect(fast.qs).toEqual(full.qs);
  expect(fast.rs.length).toBe(full.replies.length);
  full.replies.forEach((rep, i) => {
    expect(isError(rep) ? rep : rep.k).toBe("ok");
    expect(Object.is(fast.rs[i], (rep as { r: unknown }).r)).toBe(true);
  });
  return true;
}

describe("readOkBatch", () => {
  it("property: a batch of ok replies with plain results reads as the full decoder reads it", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(q, scalar), { maxLength: 40 }), (entries) => {
        const data = batchOf(entries.map(([k, r]) => [k, encodeOk(r)] as const));
        const ascii = entries.every(([, r]) => typeof r !== "string" || Buffer.byteLength(r) === r.length);
        // Every batch of ASCII strings, numbers, booleans, null and undefined takes the fast path.
        expect(expectSameAsFull(data)).toBe(ascii);
      }),
      { numRuns: 500 },
    );
  });

  it("property: any other reply or a nested result leaves the batch to the full decoder", () => {
    const other = fc.oneof(
      fc.constant(encode({ v: 1, k: "moved", owner: "n2" })),
      fc.constant(encode({ v: 1, k: "err", e: { code: "x", message: "m", retryable: false } })),
      fc.array(fc.integer(), { maxLength: 3 }).map((r) => encodeOk(r)),
      fc.constant(encodeOk({ a: 1 })),
      fc.constant(encodeOk(2n ** 60n)),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(q, scalar), { maxLength: 5 }), q, other, fc.nat(5), (oks, oq, o, at) => {
        const entries = oks.map(([k, r]) => [k, encodeOk(r)] as const);
        entries.splice(Math.min(at, entries.length), 0, [oq, o] as const);
        expect(readOkBatch(batchOf(entries))).toBeUndefined();
      }),
    );
  });

  it("property: mangled bytes are read as the full decoder reads them, or left to it; never a throw", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(q, scalar), { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        (entries, flips, cut) => {
          const good = batchOf(entries.map(([k, r]) => [k, encodeOk(r)] as const));
          const bad = Uint8Array.from(good);
          for (const [at, b] of flips) bad[at % bad.length] = b;
          expectSameAsFull(bad);
          expectSameAsFull(good.subarray(0, cut % good.length)); // cut short
          expect(readOkBatch(Buffer.concat([good, Uint8Array.of(0xc0)]))).toBeUndefined(); // trailing
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("leaves malformed entries to the full decoder, which counts them", () => {
    const zero = batchOf([
      [1, encodeOk(1)],
      [0, encodeOk(2)], // q 0 is no ask
    ]);
    expect(readOkBatch(zero)).toBeUndefined();
    const full = decodeReplyBatch(zero);
    expect(isError(full) ? full : full.malformed).toBe(1);
    // Another writer's encoding (a fixarray of entries, a q as uint16): valid, the full decoder's.
    const foreign = packr.pack({ v: 1, k: "replies", bv: 2, r: [[300, { v: 1, k: "ok", r: 5 }]] });
    expect(readOkBatch(foreign)).toBeUndefined();
    expect(decodeReplyBatch(foreign)).toEqual({
      qs: [300],
      replies: [{ v: 1, k: "ok", r: 5 }],
      malformed: 0,
    });
    for (const junk of [new Uint8Array(0), Uint8Array.of(0xc1), packr.pack({ v: 1, k: "batch" })])
      expect(readOkBatch(junk)).toBeUndefined();
  });

  it("reads a batch at every q width", () => {
    const entries = [1, 0x7f, 0x80, 0xffffffff, 2 ** 32, 2 ** 53 - 1].map((k) => [k, encodeOk(k)] as const);
    const got = readOkBatch(batchOf(entries));
    expect(got).toEqual({ qs: entries.map((e) => e[0]), rs: entries.map((e) => e[0]) });
  });
});
