// The spent-epoch mark (epochs.ts KvEpochs.spend), against a real JetStream KV bucket. Node a
// holds a tenure of a partition; node b takes an epoch for it during a brief view in which it
// was the owner, and loses the partition before it pulls, fences or serves with it (fencing.ts
// take: the epoch is spent). When a takes the partition back, the epoch bucket must still prove
// that nobody served it since a's tenure (unbroken), so that a keeps its pre-fence records.
// Without the mark, b's unused epoch looks like a foreign tenure and the proof fails.
import { type ShardNode, silentLogger, systemClock } from "@keyhold/core";
import { NatsServer } from "@keyhold/testing";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EpochSource, openEpochs } from "../src/epochs.js";
import { Fencing } from "../src/fencing.js";
import { PartitionStates } from "../src/partitions.js";

let srv: NatsServer;
let nc: NatsConnection;
beforeAll(async () => {
  srv = await NatsServer.start({ jetstream: true });
  nc = await connect({ servers: srv.url });
});
afterAll(async () => {
  await nc?.close();
  await srv?.stop();
});

/** A node's fencing for partition `p`, its view naming `owner()` the owner. */
function fencingOf(nodeId: string, epochs: EpochSource, owner: () => string) {
  const partitions = new PartitionStates({ bufferLimit: 10, logger: silentLogger, nodeId });
  const node = { closed: false, ring: { ownerOfPartition: () => owner() } } as unknown as ShardNode;
  const fencing = new Fencing({
    node,
    partitions,
    epochs,
    clock: systemClock,
    logger: silentLogger,
    nodeId,
    release: () => {},
    acquire: () => {},
  });
  return { partitions, fencing };
}

const never = new Promise<"lost">(() => {});

async function reacquire(cluster: string, mark: boolean): Promise<boolean> {
  const open = (nodeId: string) =>
    openEpochs({
      mode: "jetstream",
      connection: nc,
      cluster,
      nodeId,
      clock: systemClock,
      logger: silentLogger,
      timeoutMs: 2000,
    });
  const p = 7;
  // a's tenure: a took an epoch and began serving with it.
  const a = fencingOf("a", await open("a"), () => "a");
  const first = (await a.fencing.take(p, never))!;
  a.partitions.begin(p, first);
  // b's brief ownership: its take succeeds, but its view moved on while the write was in flight.
  const kvB = await open("b");
  let bOwner = "b";
  let marked: Promise<void> | undefined;
  const bSource: EpochSource = {
    kind: kvB.kind,
    stats: kvB.stats,
    take: async (q, seen) => {
      const e = await kvB.take(q, seen);
      bOwner = "a";
      return e;
    },
    previous: (q) => kvB.previous?.(q),
    ...(mark ? { spend: (q: number, e: number) => (marked = kvB.spend!(q, e)) } : {}),
  };
  const b = fencingOf("b", bSource, () => bOwner);
  expect(await b.fencing.take(p, never)).toBeUndefined();
  expect(marked !== undefined).toBe(mark);
  await marked;
  // a takes the partition back: its seen epoch is still its own tenure's.
  const again = (await a.fencing.take(p, never))!;
  expect(again).toBeGreaterThan(first);
  return a.fencing.unbroken(p);
}

describe("an epoch spent unused by another node", () => {
  it("keeps the holder's tenure unbroken when marked spent, and only then", async () => {
    expect(await reacquire("spent_marked", true)).toBe(true);
    expect(await reacquire("spent_unmarked", false)).toBe(false);
  });
});
