// The primary reads the common answer to a copy (`repok` for one copy) as bytes, without
// unpacking it (copy-batch.ts isRepokOne): only that exact answer may read as acknowledged.
import { describe, expect, it } from "vitest";
import { isRepokOne, REPOK_ONE } from "../src/copy-batch.js";
import { decodeReply, encode } from "../src/wire.js";

describe("isRepokOne", () => {
  it("is the repok of one copy, byte for byte", () => {
    expect(decodeReply(REPOK_ONE)).toMatchObject({ k: "repok", n: 1 });
    expect(isRepokOne(encode({ v: 1, k: "repok", n: 1 }))).toBe(true);
    expect(isRepokOne(new Uint8Array(REPOK_ONE))).toBe(true);
  });

  it("reads nothing else as acknowledged, not even an answer of the same length", () => {
    const stale = encode({ v: 1, k: "stale", n: 1, primary: null });
    expect(isRepokOne(stale)).toBe(false);
    // Same length as REPOK_ONE, one byte changed.
    const other = new Uint8Array(REPOK_ONE);
    other[other.length - 1] = (other[other.length - 1]! + 1) & 0xff;
    expect(isRepokOne(other)).toBe(false);
    expect(isRepokOne(encode({ v: 1, k: "repok", n: 2 }))).toBe(false);
    expect(isRepokOne(new Uint8Array(0))).toBe(false);
  });
});
