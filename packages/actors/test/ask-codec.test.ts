// ask-codec.ts writes the same bytes as wire.ts `encode` of the same ask or reply.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { assertArgs, encodeAsk, encodeOk } from "../src/ask-codec.js";
import { NotSerializableError } from "../src/errors.js";
import { assertSerializable } from "../src/serializable.js";
import { encode } from "../src/wire.js";

const aValue = fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null), fc.array(fc.integer()));

describe("ask-codec", () => {
  it("property: encodeAsk and encodeOk equal encode of the map", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 8, maxLength: 30 }),
        fc.string({ minLength: 1, maxLength: 10 }),
        fc.string({ minLength: 1, maxLength: 20 }),
        fc.array(aValue, { maxLength: 4 }),
        fc.nat(4),
        aValue,
        (id, t, key, a, hop, r) => {
          const want = encode({ v: 1, k: "ask", id, t, key, h: "add", a, hop });
          expect(Buffer.from(encodeAsk(id, t, key, "add", a, hop))).toEqual(Buffer.from(want));
          expect(Buffer.from(encodeOk(r))).toEqual(Buffer.from(encode({ v: 1, k: "ok", r })));
        },
      ),
    );
  });

  it("assertArgs passes and refuses exactly what assertSerializable does", () => {
    const cases: unknown[][] = [
      [1, "a", true, undefined],
      [],
      [null],
      [{ a: 1 }],
      [new Map()],
      [() => 1],
      [[1, [2n]]],
      [2n ** 70n],
    ];
    for (const a of cases) {
      let want: unknown;
      let got: unknown;
      try {
        assertSerializable(a, "the arguments of t.h", "args");
      } catch (e) {
        want = e;
      }
      try {
        assertArgs(a, "t", "h");
      } catch (e) {
        got = e;
      }
      if (want === undefined) expect(got).toBeUndefined();
      else {
        expect(got).toBeInstanceOf(NotSerializableError);
        expect((got as Error).message).toBe((want as Error).message);
      }
    }
  });
});
