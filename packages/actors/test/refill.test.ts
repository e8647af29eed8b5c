// Refills (refill.ts) and the hand-off (issue 10): a refill skips partitions the ring already
// gives to another node and never holds the partition's chain while its copies wait for
// acknowledgements, so the release that follows a membership change does not wait behind it.
import { silentLogger } from "@keyhold/core";
import { VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import { Background } from "../src/background.js";
import { PartitionStates } from "../src/partitions.js";
import { Refill } from "../src/refill.js";
import type { Replicator } from "../src/replication.js";
import type { Slot, SlotTable } from "../src/slots.js";
import type { EntityRecord } from "../src/wire.js";

const P = 7;

function setup() {
  // The ring: owner first, then the replicas; the test edits it as membership changes.
  const ring = { order: ["self", "a", "b"] };
  const sent: { to: string; keys: string[] }[] = [];
  // Acknowledgements the test releases by hand.
  const acks: (() => void)[] = [];
  const rec = (key: string): EntityRecord => ({ t: "acct", key, s: { n: 1 }, ver: 1, acq: 1, act: true });
  const replicator = {
    stats: { refills: 0, refillsFailed: 0 },
    replicasOf: () => 3,
    targets: (_p: number, n: number) => ring.order.filter((m) => m !== "self").slice(0, n - 1),
    takeCopies: () => [],
    message: (_p: number, recs: readonly EntityRecord[]) => recs,
    send: (to: string, msg: readonly EntityRecord[]) => {
      sent.push({ to, keys: msg.map((r) => r.key) });
      return new Promise<string>((r) => acks.push(() => r("ok")));
    },
  } as unknown as Replicator;
  const slots = {
    slotsOf: () => [{ key: "k1" }, { key: "k2" }],
    record: (s: Slot & { key: string }) => rec(s.key),
  } as unknown as SlotTable;
  const partitions = new PartitionStates({ bufferLimit: 10, logger: silentLogger, nodeId: "self" });
  partitions.set(P, { s: "ready" });
  const refill = new Refill({
    replicator,
    partitions,
    slots,
    clock: new VirtualClock(),
    logger: silentLogger,
    nodeId: "self",
    install: () => {},
    background: new Background({ concurrency: 4, logger: silentLogger, nodeId: "self" }),
    node: {
      ring: {
        ownerOfPartition: () => ring.order[0],
      },
    } as never,
  });
  const settle = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await partitions.settled();
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  return { ring, sent, acks, partitions, refill, settle };
}

describe("refill", () => {
  it("refills every current replica of a partition it still owns, after a take-over and on a membership change", async () => {
    const t = setup();
    await t.refill.refill(P);
    await t.settle();
    expect(t.sent.map((s) => s.to).sort()).toEqual(["a", "b"]);
    for (const ack of t.acks.splice(0)) ack();
    t.sent.length = 0;
    // "c" joins and takes "b"'s place in the replica set.
    t.ring.order = ["self", "c", "a", "b"];
    t.refill.refillAll();
    await t.settle();
    expect(t.sent.map((s) => s.to).sort()).toEqual(["a", "c"]);
    expect(t.sent[0]!.keys).toEqual(["k1", "k2"]);
    for (const ack of t.acks.splice(0)) ack();
  });

  it("skips a partition the ring already gives to another node", async () => {
    const t = setup();
    t.ring.order = ["n4", "self", "a"];
    await t.refill.refill(P);
    await t.settle();
    expect(t.sent).toEqual([]);
  });

  it("a step chained after a refill (the release) does not wait for the replicas' acknowledgements", async () => {
    const t = setup();
    void t.refill.refill(P);
    let released = false;
    void t.partitions.chain(P, async () => {
      released = true;
    });
    await t.settle();
    expect(t.sent.length).toBe(2); // sent, not acknowledged yet
    expect(t.acks.length).toBe(2);
    expect(released).toBe(true);
    for (const ack of t.acks.splice(0)) ack();
  });
});
