// A node re-acquiring a partition after a fence, whose pull misses members and whose epochs do
// not prove that nobody took the partition meanwhile, keeps its pre-fence records of a
// replicated type: it waits, that partition unserved, until the missing members answer, then
// serves the newest record by (epoch, version). It used to restart them from initialState(),
// losing every acknowledged write of the key whenever all its replicas were out of reach at that
// moment (issue 9, the NATS partition test (c): both replicas of a key across the split).
import { Entity, MemoryEpochs, type Sharding } from "@keyhold/actors";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { expect, it } from "vitest";
import { Tokened } from "./fixtures/tokened.js";
import { drive, HB, startOn, TTL } from "./support.js";

class Solo extends Entity<{ n: number }> {
  static readonly type = "solo";
  initialState() {
    return { n: 0 };
  }
  add(): number {
    return ++this.state.n;
  }
}

it("waits for a member holding a copy instead of restarting a replicated entity", async () => {
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
  // The split: b and c (the key's replicas, holding its copies) are cut off and cannot take
  // epochs (the side without the bucket's quorum); a loses NATS for longer than its lease, so
  // it fences and releases its partitions as pre-fence.
  shared.unreachable.add("b");
  shared.unreachable.add("c");
  bus.partition(["a"], ["b", "c"]);
  const link = a.node.transport as unknown as { disconnect(): void; reconnect(): void };
  link.disconnect();
  await bus.clock.advance(TTL - HB / 2);
  expect(a.node.fenced).toBe(true);
  // Someone took an epoch for the partition meanwhile: a cannot prove nobody served it.
  await shared.source("usurper").take(p, 0);
  link.reconnect();
  await bus.clock.advance(TTL * 3);
  expect(a.node.fenced).toBe(false);
  expect(a.node.members()).toEqual(["a"]);
  // a owns the partition again but does not serve it: b and c may hold newer copies.
  expect(a.stats().handoff.copyWaits).toBe(1);
  expect(a.stats().handoff.preFenceDropped).toBe(0);
  const ask = a.ref(Tokened, key).add();
  let settled = false;
  void ask.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  // Other partitions are served meanwhile.
  expect(await drive(bus, a.ref(Solo, other).add())).toBe(1);
  await bus.clock.advance(2000);
  expect(settled).toBe(false);
  // The heal: b and c answer a's pulls (retried every heartbeat) with their copies; the buffered
  // ask runs on the newest state, within its deadline. Nothing acknowledged was lost.
  bus.heal();
  expect((await drive(bus, ask))[0]).toBe(6);
  expect((await drive(bus, a.ref(Tokened, key).add()))[0]).toBe(7);
  expect(a.stats().handoff.preFenceDropped).toBe(0);
  await drive(bus, Promise.all([a.close(), b.close(), c.close()]));
});
