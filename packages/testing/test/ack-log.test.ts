// Acknowledgement-record analysis: overlaps between nodes, lost writes, reading logs.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AckRecord,
  analyzeAcks,
  counterShortfall,
  emitAck,
  lostWrites,
  parseAckRecord,
  readAckLog,
  registerLostWrites,
} from "@keyhold/testing";
import { describe, expect, it } from "vitest";

const rec = (node: string, key: string, op: string, t0: number, t1: number, value?: unknown): AckRecord => ({
  v: 1,
  node,
  key,
  op,
  kind: "write",
  t0,
  t1,
  ...(value === undefined ? {} : { value }),
});

describe("analyzeAcks", () => {
  it("finds keys acknowledged by two nodes at overlapping times, and the longest overlap", () => {
    const records = [
      rec("A", "k1", "1", 0, 10),
      rec("A", "k1", "2", 20, 100),
      rec("B", "k1", "3", 50, 60), // inside A's op 2: 10 ms
      rec("B", "k1", "4", 90, 130), // overlaps op 2 by 10 ms
      rec("A", "k2", "5", 0, 10),
      rec("B", "k2", "6", 10, 20), // touches: counts, 0 ms
      rec("A", "k3", "7", 0, 10),
      rec("A", "k3", "8", 5, 15), // same node: never an overlap
      rec("B", "k4", "9", 0, 300),
      rec("C", "k4", "10", 100, 400), // 200 ms
      rec("A", "k5", "11", 0, 10),
      rec("B", "k5", "12", 10.5, 20), // clean hand-off
    ];
    const a = analyzeAcks(records);
    expect(a.keys).toBe(5);
    expect([...a.keysWithOverlap].sort()).toEqual(["k1", "k2", "k4"]);
    expect(a.longest).toMatchObject({ key: "k4", nodes: ["B", "C"], ops: ["9", "10"], ms: 200 });
    expect(a.overlaps.find((o) => o.key === "k1")?.ms).toBe(10);
    expect(a.overlaps.find((o) => o.key === "k2")?.ms).toBe(0);
  });

  it("agrees with a pairwise comparison on random records", () => {
    for (let seed = 1; seed < 200; seed++) {
      let x = seed;
      const rnd = () => {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        return x / 2 ** 31;
      };
      const records = Array.from({ length: 12 }, (_, i) => {
        const t0 = Math.floor(rnd() * 100);
        return rec(`n${Math.floor(rnd() * 3)}`, "k", String(i), t0, t0 + Math.floor(rnd() * 20));
      });
      let best = -1;
      for (const p of records)
        for (const q of records)
          if (p.node !== q.node) best = Math.max(best, Math.min(p.t1, q.t1) - Math.max(p.t0, q.t0));
      const a = analyzeAcks(records);
      expect(a.longest?.ms ?? -1).toBe(best >= 0 ? best : -1);
    }
  });
});

describe("lost writes", () => {
  it("lists acknowledged op ids missing from the final state", () => {
    const records = [
      rec("A", "k", "1", 0, 1),
      rec("A", "k", "2", 2, 3),
      rec("B", "k", "2", 2, 3),
      rec("B", "j", "3", 0, 1),
    ];
    const final = new Map([["k", ["1"]]]);
    const r = lostWrites(records, (k) => final.get(k));
    expect(r.acked).toBe(3);
    expect(r.lost.map((l) => l.op).sort()).toEqual(["2", "3"]);
  });

  it("counts the acknowledged adds a counter no longer holds", () => {
    const records = [rec("A", "k", "1", 0, 1, 2), rec("B", "k", "2", 2, 3, 3), rec("A", "j", "3", 0, 1, 1)];
    const short = counterShortfall(records, (k) => (k === "k" ? 2 : 1));
    expect([...short]).toEqual([["k", 3]]);
  });

  it("finds register writes that came after the survivor", () => {
    const records = [rec("A", "k", "w1", 0, 10), rec("A", "k", "w2", 20, 30), rec("B", "k", "w3", 25, 35)];
    // w1 survived although w2 (and w3) started after it was acknowledged.
    expect(registerLostWrites(records, () => "w1").map((r) => r.op)).toEqual(["w2", "w3"]);
    // w2 and w3 are concurrent: either may survive.
    expect(registerLostWrites(records, () => "w3")).toEqual([]);
    expect(registerLostWrites(records, () => undefined)).toHaveLength(3);
  });
});

describe("ack log records", () => {
  it("writes JSON lines to a file and reads them back, counting malformed lines", async () => {
    const dir = await mkdtemp(join(tmpdir(), "keyhold-acks-"));
    try {
      const file = join(dir, "acks.jsonl");
      expect(emitAck({ node: "A", key: "k", op: "1", kind: "write", t0: 1, t1: 2, value: 5 }, { file })).toBe(
        true,
      );
      expect(emitAck({ node: "A", key: "k", op: "", kind: "own", t0: 0, t1: 9 }, { file })).toBe(true);
      await writeFile(
        file,
        'not json\n{"v":1,"node":"A","key":"k","op":"x","kind":"write","t0":5,"t1":4}\n',
        {
          flag: "a",
        },
      );
      const { records, malformed } = await readAckLog(file);
      expect(malformed).toBe(2);
      expect(records).toEqual([
        { v: 1, pid: process.pid, node: "A", key: "k", op: "1", kind: "write", t0: 1, t1: 2, value: 5 },
        { v: 1, pid: process.pid, node: "A", key: "k", op: "", kind: "own", t0: 0, t1: 9 },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rejects records that are not well-formed", () => {
    const good = { v: 1, node: "A", key: "k", op: "1", kind: "read", t0: 0, t1: 0 };
    expect(parseAckRecord(good)).toEqual(good);
    for (const bad of [
      null,
      { ...good, v: 2 },
      { ...good, node: "" },
      { ...good, kind: "delete" },
      { ...good, t1: -1 },
      { ...good, t0: Number.NaN },
      { ...good, pid: 1.5 },
    ])
      expect(parseAckRecord(bad)).toBeUndefined();
  });
});
