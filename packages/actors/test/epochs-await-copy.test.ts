// A node re-acquiring a partition after a fence, whose pull misses members and whose epochs do
// not prove that nobody took the partition meanwhile, keeps its pre-fence records of a
// replicated type: it waits, that partition unserved, until the missing members answer, then
// serves the newest record by (epoch, version). It used to restart them from initialState(),
// losing every acknowledged write of the key whenever all its replicas were out of reach at that
// moment (issue 9, the NATS partition test (c): both replicas of a key across the split).
import { Entity, MemoryEpochs, type Sharding } from "@keyhold/actors";
import { Ring } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { expect, it } from "vitest";
import { PEER_RETENTION_FACTOR } from "../src/peers.js";
import { Tokened } from "./fixtures/tokened.js";
import { drive, HB, startOn, TTL, watch } from "./support.js";

class Solo extends Entity<{ n: number }> {
  static readonly type = "solo";
  initialState() {
    return { n: 0 };
  }
  add(): number {
    return ++this.state.n;
  }
}

/**
 * a, b, c; `key` of partition `p` written 5 times by its primary a; then the split: b and c (its
 * replicas, holding its copies) are cut off and cannot take epochs (the side without the
 * bucket's quorum), a loses NATS for longer than its lease (it fences and releases its
 * partitions as pre-fence), someone takes an epoch of `p` meanwhile (a cannot prove nobody served
 * it), and a comes back alone and re-acquires `p`, whose pull misses b and c.
 */
async function splitAfterWrites() {
  const bus = new SimBus(new VirtualClock());
  const shared = new MemoryEpochs();
  const node = (id: string): Promise<Sharding> =>
    startOn(bus, id, { cluster: "w", entities: [Tokened, Solo], epochs: shared.source(id) });
  const a = await node("a");
  const b = await node("b");
  const c = await node("c");
  await bus.clock.advance(HB * 3);
  const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
  const key = keys.find((k) => a.node.owners(k, 1)[0] === "a")!;
  const p = a.node.ring.partition(key);
  // A plain key of another partition that nobody wrote: nothing of it waits anywhere.
  const other = keys.find((k) => a.node.owners(k, 1)[0] === "a" && a.node.ring.partition(k) !== p)!;
  for (let i = 1; i <= 5; i++) expect((await drive(bus, a.ref(Tokened, key).add()))[0]).toBe(i);
  shared.unreachable.add("b");
  shared.unreachable.add("c");
  bus.partition(["a"], ["b", "c"]);
  const link = a.node.transport as unknown as { disconnect(): void; reconnect(): void };
  link.disconnect();
  await bus.clock.advance(TTL - HB / 2);
  expect(a.node.fenced).toBe(true);
  await shared.source("usurper").take(p, 0);
  link.reconnect();
  await bus.clock.advance(TTL * 3);
  expect(a.node.fenced).toBe(false);
  expect(a.node.members()).toEqual(["a"]);
  // a owns the partition again but does not serve it: b and c may hold newer copies.
  expect(a.stats().handoff.copyWaits).toBe(1);
  expect(a.stats().handoff.preFenceDropped).toBe(0);
  return { bus, node, a, b, c, key, p, other };
}

it("waits for a member holding a copy instead of restarting a replicated entity", async () => {
  const { bus, a, b, c, key, other } = await splitAfterWrites();
  const ask = a.ref(Tokened, key).add();
  const settled = watch(ask);
  // Other partitions are served meanwhile.
  expect(await drive(bus, a.ref(Solo, other).add())).toBe(1);
  await bus.clock.advance(2000);
  expect(settled()).toBe(false);
  // The heal: b and c answer a's pulls (retried every heartbeat) with their copies; the buffered
  // ask runs on the newest state, within its deadline. Nothing acknowledged was lost.
  bus.heal();
  expect((await drive(bus, ask))[0]).toBe(6);
  expect((await drive(bus, a.ref(Tokened, key).add()))[0]).toBe(7);
  expect(a.stats().handoff.preFenceDropped).toBe(0);
  await drive(bus, Promise.all([a.close(), b.close(), c.close()]));
});

it("ends the wait when the partition moves on, handing the records over intact", async () => {
  const { bus, node, a, key, p } = await splitAfterWrites();
  const waitedSince = bus.clock.now();
  // A joiner on a's side that outranks a for the partition.
  const d = Array.from({ length: 100 }, (_, i) => `d${i}`).find(
    (id) => new Ring(["a", id], a.node.ring.ringSize).ownerOfPartition(p) === id,
  )!;
  bus.partition(["a", d], ["b", "c"]);
  const joiner = await node(d);
  await bus.clock.advance(HB * 5);
  expect(a.node.ring.ownerOfPartition(p)).toBe(d);
  // a never served the partition it waited for; the new owner serves a's records, not a restart.
  expect(a.handoffs().filter((h) => h.partition === p && h.at >= waitedSince)).toEqual([]);
  expect((await drive(bus, joiner.ref(Tokened, key).add()))[0]).toBe(6);
  expect(a.stats().handoff.preFenceDropped).toBe(0);
});

it("stops waiting for a member out of the view past the peer retention, and serves the newest record", async () => {
  const { bus, a, key } = await splitAfterWrites();
  // b comes back, c never does (it is as good as crashed for a).
  bus.partition(["a", "b"], ["c"]);
  await bus.clock.advance(HB * 5);
  expect(a.node.members()).toEqual(["a", "b"]);
  const ask = a.ref(Tokened, key).add();
  const settled = watch(ask);
  await bus.clock.advance(8000);
  expect(settled()).toBe(false); // still waiting for c (its deadline passes at 10 s)
  await bus.clock.advance(PEER_RETENTION_FACTOR * 2000 - 8000 + 2 * HB);
  // Not a restart: b's copy and a's own record agree, and the ask that waited ran on them.
  await drive(
    bus,
    ask.catch(() => {}),
  );
  // (The ask that waited may have run after its caller gave up: 6, then this one 7.)
  expect((await drive(bus, a.ref(Tokened, key).add()))[0]).toBeGreaterThanOrEqual(6);
  expect(a.stats().handoff.preFenceDropped).toBe(0);
});
