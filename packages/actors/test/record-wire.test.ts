// Replica copies on the wire (record-wire.ts encodeRep, wire.ts decodeRequest): what a primary
// packs field by field is what a replica reads back, optional fields absent or present, and a
// record with a malformed remembered ask is refused whole.

import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { decodeRequest, type EntityRecord, encode, encodeRep, isError } from "../src/wire.js";

const from = "0123456789abcdef0123456789abcdef";
const full: EntityRecord = {
  t: "rep3",
  key: "key-1",
  s: { n: 3, tags: ["a"] },
  ver: 12,
  acq: 4,
  act: true,
  recent: [
    ["abcdefghijkl1", true, 3],
    ["abcdefghijkl2", false, { code: "handler", message: "no" }],
  ],
  rem: [["tick", 1_700_000_000_000, 0, { x: 1 }]],
};
const bare: EntityRecord = { t: "rep3", key: "key-2", s: null, ver: 1, act: false };

describe("replica copies on the wire", () => {
  it("reads back every field of what was packed, with and without the optional ones", () => {
    for (const ep of [undefined, 9]) {
      const d = decodeRequest(encodeRep(17, from, [full, bare], ep));
      if (isError(d) || d.k !== "rep") throw new Error(`not a rep: ${JSON.stringify(d)}`);
      expect(d.p).toBe(17);
      expect(d.from).toBe(from);
      expect(d.ep).toBe(ep);
      expect("ep" in d).toBe(ep !== undefined);
      expect(d.recs).toEqual([full, bare]);
      // Absent fields stay absent (no `acq: undefined` that a spread of the record would carry on).
      expect(Object.keys(d.recs[1]!).sort()).toEqual(["act", "key", "s", "t", "ver"]);
    }
  });

  it("packs the same bytes through encode()", () => {
    const a = encodeRep(3, from, [full], 2);
    const b = encode({ v: 1, k: "rep", p: 3, from, recs: [full], ep: 2 });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it("refuses a record whose remembered asks are malformed", () => {
    const packr = new Packr({ useRecords: false, mapsAsObjects: true });
    const rec = { t: "rep3", key: "k", s: 1, ver: 1, act: true };
    for (const ids of [[["short", true, 1]], [["abcdefghijkl1", "yes", 1]], [["abcdefghijkl1", true]], "x"]) {
      const d = decodeRequest(packr.pack({ v: 1, k: "rep", p: 1, from, recs: [{ ...rec, ids }] }));
      expect(isError(d)).toBe(true);
    }
  });
});
