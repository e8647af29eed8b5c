// Issue 8, point 4: each leak fixed, with the bound it now has.
import { Entity, MemoryStore, memoryStore, nodeSubject } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { DedupeCache } from "../src/dedupe.js";
import { EARLY_LIMIT, Inbound } from "../src/inbound.js";
import { Telemetry } from "../src/telemetry.js";
import { drive, startOn } from "./support.js";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

class Fragile extends Entity<{ n: number }> {
  static readonly type = "fragile";
  initialState() {
    return { n: 0 };
  }
  override onActivate() {
    throw new Error("store outage");
  }
  add() {
    return ++this.state.n;
  }
}

class StoredReplicated extends Entity<{ n: number }> {
  static readonly type = "storedrep";
  static readonly replicas = 3;
  initialState() {
    return { n: 0 };
  }
  add(x: number) {
    this.state.n += x;
    return this.state.n;
  }
}

describe("leaks", () => {
  it("with a store and replicas, replicas drop copies of dormant entities (2 × idleMs)", async () => {
    const bus = new SimBus(new VirtualClock());
    const shared = new MemoryStore();
    const opts = { entities: [StoredReplicated], store: memoryStore(shared), idleMs: 500 };
    const nodes = [
      await startOn(bus, "a", opts),
      await startOn(bus, "b", opts),
      await startOn(bus, "c", opts),
    ];
    await bus.clock.advance(500);
    for (let i = 0; i < 20; i++)
      expect(await drive(bus, nodes[0]!.ref(StoredReplicated, `d${i}`).add(5))).toBe(5);
    const copies = () => nodes.reduce((n, s) => n + s.stats().replication.copies, 0);
    expect(copies()).toBe(40); // two replicas per key
    // Idle: the primaries passivate and forget them (the store holds them), then the replicas drop theirs.
    await bus.clock.advance(5000);
    expect(nodes.reduce((n, s) => n + s.stats().host.known, 0)).toBe(0);
    expect(copies()).toBe(0);
    // Nothing acknowledged is lost: the state comes back from the store.
    for (let i = 0; i < 20; i++)
      expect(await drive(bus, nodes[1]!.ref(StoredReplicated, `d${i}`).add(1))).toBe(6);
    for (const n of nodes) await drive(bus, n.close());
  });

  it("dedupe: asks that never complete are forgotten within 1.5 windows, not carried for ever", () => {
    const window = 1000;
    const cache = new DedupeCache(window, 1_000_000);
    for (let i = 0; i < 100; i++) expect(cache.begin(`never-completes-${i}`, 0)).toBeUndefined();
    // Steady traffic of asks that do complete, one per 10 ms, for ten windows.
    let late = 0;
    for (let i = 0, t = 0; t < window * 10; i++, t += 10) {
      cache.begin(`id-${i}-done`, t);
      cache.complete(`id-${i}-done`, new Uint8Array([1]));
      if (t >= window * 2) late = Math.max(late, cache.size);
    }
    // Two generations of half a window each: about 100 entries of traffic. Before the fix the
    // 100 stuck asks moved into every new generation, so the cache never went below 100 + that.
    expect(late).toBeLessThanOrEqual(window / 10 + 2);
  });

  it("a remote ask for an unknown handler leaves no slot behind", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await startOn(bus, "a");
    const raw = bus.connect("raw");
    for (let i = 0; i < 50; i++) {
      const ask = packr.pack({
        v: 1,
        k: "ask",
        id: `unknown-${String(i).padStart(4, "0")}`,
        t: "counter",
        key: `k${i}`,
        h: "nope",
        a: [],
        hop: 0,
      });
      const reply = packr.unpack(
        await drive(bus, raw.request(nodeSubject("t", "a"), ask, { timeout: 1000 })),
      ) as {
        k: string;
        e?: { code: string };
      };
      expect(reply.e?.code).toBe("KH_UNKNOWN_HANDLER");
    }
    expect(a.stats().host.known).toBe(0);
    await drive(bus, a.close());
  });

  it("an activation that fails (a store outage) leaves no slot behind", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await startOn(bus, "a", { entities: [Fragile] });
    for (let i = 0; i < 50; i++) {
      const err = await drive(bus, a.ref(Fragile, `f${i}`).add()).catch((e: unknown) => e);
      expect(String(err)).toContain("store outage");
    }
    expect(a.stats().host.known).toBe(0);
    expect(a.stats().host.active).toBe(0);
    await drive(bus, a.close());
  });

  it("the start-up buffer is bounded by bytes as well as by count", () => {
    const bus = new SimBus(new VirtualClock());
    const inbound = new Inbound(bus.connect("x"), silentLogger, 10_000);
    const junk = new Uint8Array(1000).fill(0xc1); // not msgpack: counted as malformed when served
    for (let i = 0; i < 50; i++) inbound.handle(junk, undefined);
    expect(inbound.stats.earlyDropped).toBe(40);
    inbound.serve({
      nodeId: "x",
      clock: bus.clock,
      dispatcher: undefined,
      replicator: undefined,
      router: undefined as never,
      batcher: undefined as never,
      dedupe: new DedupeCache(0, 0),
      telemetry: Telemetry.off,
      ownerOf: () => undefined,
    });
    expect(inbound.stats.malformed).toBe(10); // the 10 kept, 10,000 bytes
    // The count bound still holds for tiny requests.
    const counted = new Inbound(bus.connect("y"), silentLogger, 1 << 30);
    const tiny = new Uint8Array([0xc1]);
    for (let i = 0; i < EARLY_LIMIT + 5; i++) counted.handle(tiny, undefined);
    expect(counted.stats.earlyDropped).toBe(5);
  });
});
