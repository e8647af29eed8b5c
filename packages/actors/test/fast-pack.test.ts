// fast-pack.ts writes exactly the bytes wire.ts `packr` writes for the same ask or `ok` reply
// (the wire format is unchanged), for random values and at every msgpack width boundary; and
// fast-read.ts reads a plain scalar as packr reads it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { packAskMessage, packAskSeq, packOkMessage } from "../src/fast-pack.js";
import { lastScalarEnd, NOT_PLAIN, readScalar } from "../src/fast-read.js";
import { packr } from "../src/wire.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const askOf = (id: string, t: string, key: string, h: string, a: readonly unknown[], hop: number) =>
  packr.pack({ v: 1, k: "ask", id, t, key, h, a, hop });
const okOf = (r: unknown) => packr.pack({ v: 1, k: "ok", r });

/** Integers at and beside every msgpack width boundary, both signs. */
const BOUNDARY_INTS = [
  0,
  1,
  0x1f,
  0x20,
  0x3f,
  0x40,
  0x7f,
  0x80,
  0xff,
  0x100,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  0x100000000,
  2 ** 53 - 1,
  -1,
  -0x1f,
  -0x20,
  -0x21,
  -0x7f,
  -0x80,
  -0x81,
  -0x7fff,
  -0x8000,
  -0x8001,
  -0x7fffffff,
  -0x80000000,
  -0x80000001,
  -(2 ** 53 - 1),
];
const FLOATS = [
  0.5,
  -0.5,
  1e300,
  -1e-300,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -0,
];
/** Strings whose UTF-8 length sits on each header boundary, ASCII and not. */
const BOUNDARY_STRINGS = [
  "",
  ...[31, 32, 63, 64, 255, 256, 65535, 65536].map((n) => "x".repeat(n)),
  "é".repeat(15), // 30 bytes, 15 chars
  "é".repeat(16), // 32 bytes from 16 chars: the header grows past the guess
  "€".repeat(11), // 33 bytes
  `${"a".repeat(30)}é`, // 32 bytes from 31 chars
  "é".repeat(128), // 256 bytes from 128 chars
  "€".repeat(21846), // 65538 bytes from 21846 chars
  "😀 emoji",
  "\ud800 lone", // a lone surrogate: U+FFFD, short and long
  `${"\udc00".repeat(70)}`,
];

const scalar = fc.oneof(
  fc.integer(),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.constantFrom(...BOUNDARY_INTS),
  fc.double(),
  fc.constantFrom(...FLOATS),
  fc.string({ unit: "grapheme", maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ maxLength: 300 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
);
/** Values packr writes for fast-pack (nested, bigint): the fallback. */
const nested = fc.oneof(
  fc.array(scalar, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), scalar, { maxKeys: 3 }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
);
const value = fc.oneof({ weight: 4, arbitrary: scalar }, { weight: 1, arbitrary: nested });
const str = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 40 }));

describe("fast-pack", () => {
  it("property: an ask is packr's bytes, for plain and nested arguments", () => {
    fc.assert(
      fc.property(
        str,
        str,
        str,
        str,
        fc.array(value, { maxLength: 20 }),
        fc.nat(4),
        (id, t, key, h, a, hop) => {
          expect(hex(packAskMessage(id, t, key, h, a, hop))).toBe(hex(askOf(id, t, key, h, a, hop)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("property: an ask with a sequence id is packr's bytes of the id string", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(..."AZaz09-_"), minLength: 12, maxLength: 12 }),
        fc.oneof(fc.nat(), fc.maxSafeNat(), fc.constantFrom(0, 35, 36, 1295, 1296, 2 ** 53 - 1)),
        str,
        str,
        fc.array(scalar, { maxLength: 4 }),
        (prefix, seq, t, key, a) => {
          const id = prefix + seq.toString(36);
          expect(hex(packAskSeq(prefix, seq, t, key, "add", a, 0))).toBe(hex(askOf(id, t, key, "add", a, 0)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("property: an ok reply is packr's bytes", () => {
    fc.assert(
      fc.property(value, (r) => {
        expect(hex(packOkMessage(r))).toBe(hex(okOf(r)));
      }),
      { numRuns: 2000 },
    );
  });

  it("every width boundary: ints, floats, strings, 16 and more arguments", () => {
    for (const r of [...BOUNDARY_INTS, ...FLOATS, ...BOUNDARY_STRINGS, true, false, null, undefined])
      expect(hex(packOkMessage(r)), String(r).slice(0, 20)).toBe(hex(okOf(r)));
    for (const s of BOUNDARY_STRINGS) {
      expect(hex(packAskMessage(s, s, s, s, [s], 0))).toBe(hex(askOf(s, s, s, s, [s], 0)));
    }
    for (const n of [15, 16, 65535, 65536]) {
      const a = Array.from({ length: n }, (_, i) => i);
      expect(hex(packAskMessage("id", "t", "k", "h", a, 1))).toBe(hex(askOf("id", "t", "k", "h", a, 1)));
    }
    expect(hex(packAskSeq("p".repeat(40), 123, "t", "k", "h", [], 0))).toBe(
      hex(askOf(`${"p".repeat(40)}${(123).toString(36)}`, "t", "k", "h", [], 0)),
    );
  });

  it("messages cut from one slab do not overlap, and a large one gets a slab of its own", () => {
    const big = "y".repeat(20_000);
    const outs = Array.from(
      { length: 500 },
      (_, i) => [i, packOkMessage(i === 250 ? big : `v${i}`)] as const,
    );
    for (const [i, out] of outs)
      expect(packr.unpack(out)).toEqual({ v: 1, k: "ok", r: i === 250 ? big : `v${i}` });
  });

  it("property: readScalar reads what packr reads, or refuses (NOT_PLAIN)", () => {
    fc.assert(
      fc.property(value, (r) => {
        const b = packr.pack(r);
        const got = readScalar(b, new DataView(b.buffer, b.byteOffset, b.byteLength), 0);
        if (got === NOT_PLAIN) return;
        expect(lastScalarEnd()).toBe(b.length);
        expect(Object.is(got, packr.unpack(b))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("readScalar refuses what it does not read, and values cut short", () => {
    const read = (b: Uint8Array) => readScalar(b, new DataView(b.buffer, b.byteOffset, b.byteLength), 0);
    for (const v of [[1], { a: 1 }, 2n ** 62n, "é", "ü".repeat(40), new Uint8Array(3)])
      expect(read(packr.pack(v))).toBe(NOT_PLAIN);
    for (const v of [0x1234, 0x12345678, -0x1234, 0.5, "x".repeat(40), "x".repeat(300), undefined]) {
      const b = packr.pack(v);
      for (let cut = 0; cut < b.length; cut++) expect(read(b.subarray(0, cut))).toBe(NOT_PLAIN);
    }
    expect(read(Uint8Array.of(0xd4, 0x01, 0x00))).toBe(NOT_PLAIN); // another fixext1
  });
});
