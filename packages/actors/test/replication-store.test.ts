// Entities with a durable store on the simulated bus: writes go through before the answer, a
// whole-cluster restart keeps every acknowledged write, a stale owner is fenced by the store's
// revision, a failing store acknowledges nothing, and an idle entity comes back from the store.
import {
  Entity,
  MemoryStore,
  memoryStore,
  type Sharding,
  type ShardingOptions,
  StoreConflictError,
  StoreError,
} from "@keyhold/actors";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { beforeEach, describe, expect, it } from "vitest";
import { Account } from "./fixtures/account.js";
import { drive, startOn, TTL } from "./support.js";

class Stored extends Entity<{ n: number }> {
  static readonly type = "stored";
  initialState() {
    return { n: 0 };
  }
  add(x: number) {
    this.state.n += x;
    return this.state.n;
  }
  get() {
    return this.state.n;
  }
}

let bus: SimBus;
beforeEach(() => {
  bus = new SimBus(new VirtualClock());
});

function node(id: string, extra: Partial<ShardingOptions> = {}, client = false): Promise<Sharding> {
  // Step by step ("auto", the default, named so the property keeps it): it found a refill bug that way.
  const opts = { cluster: "r", entities: [Account, Stored], joinStepPartitions: "auto" as const, ...extra };
  return startOn(bus, id, opts, client);
}

/** Vanishes without a leave (kill -9): its transport goes silent. */
async function crash(s: Sharding): Promise<void> {
  await s.node.transport.close();
}

describe("durable store", () => {
  it("writes through before answering; a whole-cluster restart keeps every acknowledged write", async () => {
    const shared = new MemoryStore();
    const first = [
      await node("a", { store: memoryStore(shared) }),
      await node("b", { store: memoryStore(shared) }),
    ];
    const keys = Array.from({ length: 25 }, (_, i) => `s-${i}`);
    for (const k of keys) await drive(bus, first[0]!.ref(Stored, k).add(3));
    expect(shared.size).toBe(25);
    for (const s of first) await crash(s); // everything dies at once
    await bus.clock.advance(TTL * 3);
    const second = [
      await node("c", { store: memoryStore(shared) }),
      await node("d", { store: memoryStore(shared) }),
    ];
    for (const k of keys) expect(await drive(bus, second[1]!.ref(Stored, k).add(1)), k).toBe(4);
  });

  it("a stale owner's write is refused by revision and the ask is retried on fresh state", async () => {
    const shared = new MemoryStore();
    const a = await node("a", { store: memoryStore(shared) });
    expect(await drive(bus, a.ref(Stored, "x").add(1))).toBe(1);
    // Another owner (say, across a partition) wrote meanwhile.
    const cur = await shared.load("stored", "x");
    await shared.save("stored", "x", { state: { n: 100 }, version: 50 }, cur!.revision);
    expect(await drive(bus, a.ref(Stored, "x").add(1))).toBe(101);
    await expect(
      shared.save("stored", "x", { state: { n: 0 }, version: 1 }, cur!.revision),
    ).rejects.toBeInstanceOf(StoreConflictError);
  });

  it("a store that fails surfaces a typed StoreError and acknowledges nothing", async () => {
    const shared = new MemoryStore();
    const a = await node("a", { store: memoryStore(shared) });
    expect(await drive(bus, a.ref(Stored, "y").add(1))).toBe(1);
    shared.failing = true;
    const err = await drive(bus, a.ref(Stored, "y").add(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    shared.failing = false;
    expect((await shared.load("stored", "y"))?.state).toEqual({ n: 1 });
  });
});

describe("memory with a store", () => {
  it("an idle entity is forgotten from memory and comes back from the store", async () => {
    const shared = new MemoryStore();
    const a = await node("a", { store: memoryStore(shared), idleMs: 500 });
    expect(await drive(bus, a.ref(Stored, "sleepy").add(7))).toBe(7);
    expect(a.stats().host.known).toBe(1);
    await bus.clock.advance(1500);
    expect(a.stats().host.known).toBe(0);
    expect(await drive(bus, a.ref(Stored, "sleepy").add(1))).toBe(8);
  });
});
