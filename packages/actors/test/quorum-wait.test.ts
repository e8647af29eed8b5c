// The write-quorum rule of an acquirer without pre-fence records (await-copy.ts `quorum`): a
// write of a type with N copies is acknowledged by majorityReplicas(N) + 1 of them, so a new
// owner whose pull missed that many members of the partition's replica set may lack it, and
// waits, the partition unserved; one whose pull missed fewer serves at once. Only members of the
// replica set count: a node that cannot hold copies of the partition is not waited for.
import type { Sharding } from "@keyhold/actors";
import { Ring } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { beforeEach, expect, it } from "vitest";
import { Account } from "./fixtures/account.js";
import { drive, HB, startOn, TTL, watch } from "./support.js";

let bus: SimBus;
beforeEach(() => {
  bus = new SimBus(new VirtualClock());
});

const node = (id: string, client = false): Promise<Sharding> =>
  startOn(bus, id, { cluster: "q", entities: [Account] }, client);

const keys = Array.from({ length: 200 }, (_, i) => `acct-${i}`);

const waits = (nodes: readonly Sharding[]) => nodes.reduce((n, s) => n + s.stats().handoff.quorumWaits, 0);

it("one member of three lost: its partitions fail over at once, with every acknowledged write", async () => {
  const [a, b, c] = [await node("a"), await node("b"), await node("c")];
  const client = await node("cl", true);
  const mine = keys.filter((k) => client.node.place(k) === "c").slice(0, 10);
  for (const k of mine) expect(await drive(bus, client.ref(Account, k).deposit(5))).toBe(5);
  await c!.node.transport.close(); // a crash: no leave
  await bus.clock.advance(TTL + HB * 2);
  const start = bus.clock.now();
  for (const k of mine) expect(await drive(bus, client.ref(Account, k).balance()), k).toBe(5);
  // Served as soon as the views dropped c, not after a wait for it.
  expect(bus.clock.now() - start).toBeLessThan(HB * 3);
  expect(waits([a!, b!])).toBe(0);
  await drive(bus, Promise.all([a!.close(), b!.close(), client.close()]));
});

it("two of a key's three replicas out of reach at once: its new owner waits for them, then serves what they hold", async () => {
  const nodes = [await node("a"), await node("b"), await node("c"), await node("d")];
  const client = await node("cl", true);
  const four = new Ring(["a", "b", "c", "d"], 64);
  // Keys of b whose other replica is c: both out of reach below, with every copy a and d may lack.
  const theirs = keys.filter((k) => four.owners(k, 2).join() === "b,c").slice(0, 5);
  expect(theirs.length).toBeGreaterThan(0);
  for (const k of theirs) expect(await drive(bus, client.ref(Account, k).deposit(7))).toBe(7);
  await bus.clock.advance(TTL + HB * 2); // d joined a while ago (await-copy.ts viewChanged)
  bus.partition(["a", "d", "cl"], ["b", "c"]);
  await bus.clock.advance(TTL + HB * 2);
  expect(nodes[0]!.node.members()).toEqual(["a", "d"]);
  // a and d make a write quorum of their own (2 of 3 copies): served from nothing, a deposit
  // would be acknowledged as 1, and the 7 lost for good once it is (a newer epoch).
  const asks = theirs.map((k) => client.ref(Account, k).deposit(1));
  const settled = asks.map(watch);
  await bus.clock.advance(3000);
  expect(settled.some((s) => s())).toBe(false);
  bus.heal();
  for (const [i, ask] of asks.entries()) expect(await drive(bus, ask), theirs[i]).toBe(8);
  expect(waits([nodes[0]!, nodes[3]!])).toBeGreaterThan(0);
  await drive(bus, Promise.all([...nodes, client].map((s) => s.close())));
});

it("five members split 3 | 2: the majority waits only where both far members are in the replica set", async () => {
  const ids = ["n0", "n1", "n2", "n3", "n4"];
  const nodes: Sharding[] = [];
  for (const id of ids) nodes.push(await node(id));
  const client = await node("cl", true);
  const five = new Ring(ids, 64);
  const far = (k: string) => five.owners(k, 3).filter((m) => m === "n3" || m === "n4").length;
  // Keys the far side owned: with one far member among its three replicas, or both.
  const owned = keys.filter((k) => ["n3", "n4"].includes(client.node.place(k)!));
  const served = owned.filter((k) => far(k) === 1).slice(0, 4);
  const waiting = owned.filter((k) => far(k) === 2).slice(0, 4);
  expect(served.length).toBeGreaterThan(0);
  expect(waiting.length).toBeGreaterThan(0);
  for (const k of [...served, ...waiting])
    expect(await drive(bus, client.ref(Account, k).deposit(3))).toBe(3);
  await bus.clock.advance(TTL + HB * 2);
  bus.partition(["n0", "n1", "n2", "cl"], ["n3", "n4"]);
  await bus.clock.advance(TTL + HB * 2);
  const start = bus.clock.now();
  // Its pull missed one of three replicas: a quorum (two) of them answered, so it serves at once.
  for (const k of served) expect(await drive(bus, client.ref(Account, k).balance()), k).toBe(3);
  expect(bus.clock.now() - start).toBeLessThan(HB * 5);
  const asks = waiting.map((k) => client.ref(Account, k).balance());
  const settled = asks.map(watch);
  await bus.clock.advance(3000);
  expect(settled.some((s) => s())).toBe(false);
  // Exactly the partitions of both kinds: one wait per partition whose replica set holds both.
  const parts = new Set(
    Array.from({ length: 64 }, (_, p) => p).filter(
      (p) =>
        ["n3", "n4"].includes(five.ownerOfPartition(p)!) &&
        five.ownersOfPartition(p, 3).filter((m) => m === "n3" || m === "n4").length === 2,
    ),
  );
  expect(waits(nodes.slice(0, 3))).toBe(parts.size);
  bus.heal();
  for (const [i, ask] of asks.entries()) expect(await drive(bus, ask), waiting[i]).toBe(3);
  await drive(bus, Promise.all([...nodes, client].map((s) => s.close())));
});
