// Copy version 2 (copy-wire.ts, copy-store.ts): a replica judges a copy by its header, keeps the
// record packed in bytes of its own, and unpacks it only on a hand-off or promotion, where a
// malformed body is counted and dropped.
import { hashKey, type ShardNode } from "@keyhold/core";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { answerCopy } from "../src/copy-batch.js";
import { COPY_BATCH_VERSION } from "../src/copy-wire.js";
import { Replicator } from "../src/replication.js";
import { decodeReply, decodeRequest, type EntityRecord, encodeRep, isError } from "../src/wire.js";

const RING = 64;
const primary = "0123456789abcdef0123456789abcdef";
const ring = { ringSize: RING, partition: (k: string) => hashKey(k) % RING, ownerOfPartition: () => primary };

function replicator(): Replicator {
  const node = { ring, members: () => [primary, "me"], leaseValid: () => true } as unknown as ShardNode;
  return new Replicator({
    node,
    transport: {} as never,
    cluster: "c",
    nodeId: "me",
    clock: { now: () => 1_000, monoNow: () => 1_000 } as never,
    logger: { debug() {}, info() {}, warn() {}, error() {} } as never,
    timeoutMs: 1000,
    quorum: "all",
    replicasOf: () => 3,
    orphanGraceMs: 1000,
  });
}

const rec = (key: string, ver: number): EntityRecord => ({
  t: "rep3",
  key,
  s: { n: ver },
  ver,
  acq: 2,
  act: true,
  recent: [["abcdefghijkl1", true, ver]],
});

/** A decoded `rep` of one record as a replica gets it. */
function inbound(data: Uint8Array) {
  const d = decodeRequest(data);
  if (isError(d) || d.k !== "rep") throw new Error(`not a rep: ${JSON.stringify(d)}`);
  return d;
}

describe("copy version 2", () => {
  it("keeps the record in bytes of its own, not a view into the message it came in", () => {
    const r = replicator();
    const key = "key-1";
    const data = encodeRep(ring.partition(key), primary, [rec(key, 3)], 2);
    const msg = inbound(data);
    expect(decodeReply(answerCopy(r, msg))).toMatchObject({ k: "repok", n: 1 });
    // The socket buffer a message came in is reused for the next one.
    data.fill(0);
    expect(r.takeCopies(ring.partition(key))).toEqual([{ ...rec(key, 3), act: false }]);
    expect(r.stats.copiesMalformed).toBe(0);
  });

  it("judges by the header and drops a malformed body where it is unpacked, counted", () => {
    const r = replicator();
    const key = "key-2";
    const p = ring.partition(key);
    const packr = new Packr({ useRecords: false, mapsAsObjects: true });
    // A header that claims version 5 over a body that is not a record.
    const bad = packr.pack({
      v: 1,
      k: "rep",
      cv: COPY_BATCH_VERSION,
      p,
      from: primary,
      ep: 2,
      c: ["rep3", key, 5, 2, new Uint8Array([0xc1])],
    });
    expect(decodeReply(answerCopy(r, inbound(bad)))).toMatchObject({ k: "repok" });
    expect(r.copyCount).toBe(1);
    // A copy of an older tenure is refused by the header alone.
    expect(
      decodeReply(answerCopy(r, inbound(encodeRep(p, primary, [{ ...rec(key, 9), acq: 1 }], 2)))),
    ).toMatchObject({
      k: "stale",
    });
    expect(r.copiesOf(p)).toEqual([]);
    expect(r.stats.copiesMalformed).toBe(1);
    expect(r.copyCount).toBe(0);
  });

  it("refuses a body whose record does not match its header", () => {
    const r = replicator();
    const key = "key-3";
    const p = ring.partition(key);
    const packr = new Packr({ useRecords: false, mapsAsObjects: true });
    const body = packr.pack({ t: "rep3", key, s: 1, ver: 9, act: true, acq: 2 });
    const lying = packr.pack({
      v: 1,
      k: "rep",
      cv: COPY_BATCH_VERSION,
      p,
      from: primary,
      ep: 2,
      c: ["rep3", key, 10, 2, body],
    });
    answerCopy(r, inbound(lying));
    expect(r.takeCopies(p)).toEqual([]);
    expect(r.stats.copiesMalformed).toBe(1);
  });

  it("refuses a malformed header at decode", () => {
    const packr = new Packr({ useRecords: false, mapsAsObjects: true });
    const m = (c: unknown) =>
      decodeRequest(packr.pack({ v: 1, k: "rep", cv: COPY_BATCH_VERSION, p: 1, from: primary, c }));
    const body = new Uint8Array([0x80]);
    for (const c of [
      ["rep3", "k", 1, 0],
      ["rep3", "k", 1, 0, "not bytes"],
      ["rep3", "", 1, 0, body],
      ["rep3", "k", -1, 0, body],
      ["rep3", "k", 1, 1.5, body],
      ["rep3", "k", 1, 0, new Uint8Array(0)],
      "x",
    ])
      expect(isError(m(c)), JSON.stringify(c)).toBe(true);
    expect(isError(m(["rep3", "k", 1, 0, body]))).toBe(false);
  });
});

describe("the replicas of a write", () => {
  it("are computed again for a new ring (a view change), not kept from the old one", () => {
    const rows: Record<string, string[]> = { old: ["me", "b", "c"], new: ["me", "d", "b"] };
    let view = "old";
    const ringOf = (name: string) => ({
      ...ring,
      ownersOfPartition: (_p: number, n: number) => rows[name]!.slice(0, n),
    });
    const rings = { old: ringOf("old"), new: ringOf("new") };
    const node = {
      get ring() {
        return rings[view as "old" | "new"];
      },
      members: () => ["me", "b", "c", "d"],
      leaseValid: () => true,
    } as unknown as ShardNode;
    const r = new Replicator({
      node,
      transport: {} as never,
      cluster: "c",
      nodeId: "me",
      clock: { now: () => 0, monoNow: () => 0 } as never,
      logger: { debug() {}, info() {}, warn() {}, error() {} } as never,
      timeoutMs: 1000,
      quorum: "all",
      replicasOf: () => 3,
      orphanGraceMs: 1000,
    });
    expect(r.targets(5, 3)).toEqual(["b", "c"]);
    expect(r.targets(5, 2)).toEqual(["b"]);
    view = "new";
    expect(r.targets(5, 3)).toEqual(["d", "b"]);
  });
});
