// Checks the test vectors published in docs/reference/placement.md against the code.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { murmur3Bytes, murmur3String, ownersOf, partitionOf, Ring, scoreOf } from "@keyhold/core";
import { describe, expect, it } from "vitest";

const doc = readFileSync(
  fileURLToPath(new URL("../../../docs/reference/placement.md", import.meta.url)),
  "utf8",
);

/** Rows of the markdown table that follows `heading`. */
function table(heading: string): string[][] {
  const start = doc.indexOf(heading);
  if (start < 0) throw new Error(`no section ${heading}`);
  const rows: string[][] = [];
  for (const line of doc.slice(start).split("\n").slice(1)) {
    if (line.startsWith("#")) break;
    if (!line.startsWith("|") || line.startsWith("|---")) continue;
    rows.push(
      line
        .slice(1, -1)
        .split("|")
        .map((c) => c.trim()),
    );
  }
  return rows.slice(1); // header
}

describe("placement vectors in docs/reference/placement.md", () => {
  it("key hash and partition", () => {
    const rows = table("### Key hash and partition");
    expect(rows.length).toBeGreaterThanOrEqual(8);
    for (const [k, h, p64, p1024] of rows) {
      const key = JSON.parse(k!) as string;
      expect(murmur3String(key, 0), key).toBe(Number(h));
      expect(murmur3Bytes(new TextEncoder().encode(key), 0), key).toBe(Number(h));
      expect(partitionOf(key, 64), key).toBe(Number(p64));
      expect(partitionOf(key, 1024), key).toBe(Number(p1024));
      expect(new Ring(["x"], 64).partition(key)).toBe(Number(p64));
    }
  });

  it("member score", () => {
    const rows = table("### Member score");
    expect(rows.length).toBeGreaterThanOrEqual(12);
    for (const [m, p, s] of rows) expect(scoreOf(m!, Number(p)), `${m}/${p}`).toBe(Number(s));
  });

  it("owners", () => {
    const rows = table("### Owners");
    const members = ["node-a", "node-b", "node-c", "node-d"];
    expect(rows.length).toBeGreaterThanOrEqual(4);
    for (const [k, list] of rows) {
      const key = JSON.parse(k!) as string;
      const expected = list!.split(",").map((s) => s.trim());
      expect(ownersOf(key, members, 4, 64)).toEqual(expected);
      expect(new Ring([...members].reverse(), 64).owners(key, 4)).toEqual(expected);
    }
  });
});
