// Entities over the simulated bus and virtual clock: routing, errors, one-at-a-time mailboxes,
// activation and passivation, and hand-off on join and graceful leave, in virtual time.
import {
  DeadlineExceededError,
  Entity,
  HandlerError,
  MailboxFullError,
  NoLiveMemberError,
  NotSerializableError,
  type Sharding,
  UnknownEntityTypeError,
  UnknownHandlerError,
} from "@keyhold/actors";
import { Ring } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { beforeEach, describe, expect, it } from "vitest";
import { Counter, drive, HB, startOn, TTL } from "./support.js";

class Slow extends Entity<{ log: number[]; running: number; max: number }> {
  static readonly type = "slow";
  initialState() {
    return { log: [], running: 0, max: 0 };
  }
  async push(i: number, ms: number) {
    this.state.running++;
    this.state.max = Math.max(this.state.max, this.state.running);
    await new Promise((r) => setTimeout(r, ms));
    this.state.log.push(i);
    this.state.running--;
    return i;
  }
  stats() {
    return this.state;
  }
  hang() {
    return new Promise(() => {});
  }
}

let bus: SimBus;
beforeEach(() => {
  bus = new SimBus(new VirtualClock());
  Counter.activations = 0;
  Counter.passivations = 0;
});

describe("routing and results", () => {
  it("asks reach one instance per key from any node or client, locally or over the bus", async () => {
    const a = await startOn(bus, "a");
    const b = await startOn(bus, "b");
    const client = await startOn(bus, "cl", {}, true);
    const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);
    for (const k of keys) {
      await drive(bus, a.ref(Counter, k).add(1));
      await drive(bus, b.ref(Counter, k).add(2));
      expect(await drive(bus, client.ref(Counter, k).add(3))).toBe(6);
    }
    const owned = { a: 0, b: 0 };
    for (const k of keys) owned[a.node.place(k) as "a" | "b"]++;
    expect(owned.a).toBeGreaterThan(0);
    expect(owned.b).toBeGreaterThan(0);
    // each key lives on exactly one node
    expect(a.stats().host.known + b.stats().host.known).toBe(keys.length);
    expect(client.stats().host.known).toBe(0);
  });

  it("tell is fire-and-forget and is applied", async () => {
    const a = await startOn(bus, "a");
    await startOn(bus, "b");
    for (let i = 0; i < 20; i++) a.ref(Counter, `t${i % 4}`).tell("add", 1);
    await bus.clock.advance(20);
    for (let i = 0; i < 4; i++) expect(await drive(bus, a.ref(Counter, `t${i}`).get())).toBe(5);
  });
});

describe("errors", () => {
  it("a handler that throws gives the caller a HandlerError with message and code, local or remote", async () => {
    const a = await startOn(bus, "a");
    const b = await startOn(bus, "b");
    for (const s of [a, b]) {
      const err = await drive(bus, s.ref(Counter, "boom").fail("no way")).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HandlerError);
      expect((err as HandlerError).message).toBe("no way");
      expect((err as HandlerError).code).toBe("KH_HANDLER_FAILED");
      expect((err as HandlerError).remoteName).toBe("RangeError");
    }
  });

  it("unknown handler, unknown type, unserializable args or result each have their own error", async () => {
    const a = await startOn(bus, "a");
    const ref = a.ref(Counter, "x");
    await expect(a.ask(Counter, "x", "nope", [])).rejects.toBeInstanceOf(UnknownHandlerError);
    expect(() => (ref as unknown as { nope: unknown }).nope).toThrow(UnknownHandlerError);
    await expect(
      drive(
        bus,
        ref.echo(() => 1),
      ),
    ).rejects.toBeInstanceOf(NotSerializableError);
    await expect(drive(bus, ref.echo(new Map()))).rejects.toThrow(/args\[0\] is a Map/);
    await expect(drive(bus, ref.leak())).rejects.toBeInstanceOf(NotSerializableError);
    const client = await startOn(bus, "cl", { entities: [Slow] }, true);
    const err = await drive(bus, client.ref(Slow, "s").push(1, 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownEntityTypeError);
  });

  it("a deadline gives DeadlineExceededError; no live member gives NoLiveMemberError", async () => {
    const a = await startOn(bus, "a", { entities: [Counter, Slow] });
    const b = await startOn(bus, "b", { entities: [Counter, Slow] });
    const key = ["h1", "h2", "h3", "h4"].find((k) => a.node.place(k) === "b")!;
    const err = await drive(bus, a.ref(Slow, key).ask("hang", [], { timeout: 500 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect((err as DeadlineExceededError).retryable).toBe(true);
    await drive(bus, a.close());
    await drive(bus, b.close());
    // With no member to learn the settings from, a client must be given all of them.
    const lonely = await startOn(bus, "cl", { ringSize: 64 }, true);
    const err2 = await drive(bus, lonely.ref(Counter, "x").ask("add", [1], { timeout: 300 })).catch(
      (e: unknown) => e,
    );
    expect(err2).toBeInstanceOf(NoLiveMemberError);
  });

  it("an aborted ask rejects with AbortedError", async () => {
    const a = await startOn(bus, "a", { entities: [Counter, Slow] });
    const ac = new AbortController();
    const p = a.ref(Slow, "x").ask("hang", [], { signal: ac.signal, timeout: 10_000 });
    await bus.clock.advance(5);
    ac.abort();
    await expect(drive(bus, p)).rejects.toMatchObject({ code: "KH_ABORTED" });
  });
});

describe("mailboxes", () => {
  it("one message at a time per entity, in send order", async () => {
    const a = await startOn(bus, "a", { entities: [Slow] });
    const b = await startOn(bus, "b", { entities: [Slow] });
    for (const s of [a, b]) {
      const ref = s.ref(Slow, "one");
      const ps = Array.from({ length: 10 }, (_, i) => ref.push(i, 3));
      // real timers inside the handler: let them run
      const results = await Promise.all(ps.map((p) => drive(bus, p)));
      expect(results).toEqual([...Array(10).keys()]);
    }
    const st = await drive(bus, a.ref(Slow, "one").stats());
    expect(st.max).toBe(1);
    expect(st.log).toEqual([...Array(10).keys(), ...Array(10).keys()]);
  });

  it("a full mailbox fails fast with a retryable MailboxFullError", async () => {
    const a = await startOn(bus, "a", { entities: [Slow], mailboxSize: 2 });
    const ref = a.ref(Slow, "busy");
    // The handler sleeps on real timers while the test drives virtual time: a long deadline.
    const ps = Array.from({ length: 6 }, (_, i) =>
      ref.ask("push", [i, 20], { timeout: 3_600_000 }).catch((e: unknown) => e),
    );
    const out = await Promise.all(ps.map((p) => drive(bus, p)));
    const full = out.filter((o) => o instanceof MailboxFullError) as MailboxFullError[];
    expect(full.length).toBeGreaterThanOrEqual(3);
    expect(full[0]!.retryable).toBe(true);
    expect(out.filter((o) => typeof o === "number").length).toBeGreaterThanOrEqual(2);
  });
});

describe("activation and passivation", () => {
  it("onActivate runs before the first message; idle entities passivate and keep their state", async () => {
    const a = await startOn(bus, "a", { idleMs: 1000 });
    const ref = a.ref(Counter, "idle");
    expect(await drive(bus, ref.add(5))).toBe(5);
    expect(Counter.activations).toBe(1);
    expect(a.stats().host.active).toBe(1);
    await bus.clock.advance(2500);
    expect(Counter.passivations).toBe(1);
    expect(a.stats().host.active).toBe(0);
    expect(await drive(bus, ref.add(1))).toBe(6);
    expect(Counter.activations).toBe(2);
  });

  it("beyond maxActive, the least recently used entities are passivated", async () => {
    const a = await startOn(bus, "a", { maxActive: 3 });
    for (const k of ["e1", "e2", "e3", "e4", "e5"]) await drive(bus, a.ref(Counter, k).add(1));
    await bus.clock.advance(1);
    expect(a.stats().host.active).toBeLessThanOrEqual(3);
    expect(Counter.passivations).toBeGreaterThanOrEqual(2);
    // e1 was passivated but kept its state
    expect(await drive(bus, a.ref(Counter, "e1").add(1))).toBe(2);
  });
});

describe("hand-off", () => {
  async function load(from: Sharding, keys: string[], counts: Map<string, number>) {
    await Promise.all(
      keys.map((k) =>
        drive(bus, from.ref(Counter, k).add(1)).then(() => counts.set(k, (counts.get(k) ?? 0) + 1)),
      ),
    );
  }

  it("a joining node takes its partitions with their state; nothing lost, entities active again", async () => {
    const a = await startOn(bus, "a");
    const b = await startOn(bus, "b");
    const keys = Array.from({ length: 200 }, (_, i) => `c${i}`);
    const counts = new Map<string, number>();
    await load(a, keys, counts);
    const c = await startOn(bus, "c");
    await bus.clock.advance(HB * 3);
    const moved = keys.filter((k) => c.node.place(k) === "c");
    expect(moved.length).toBeGreaterThan(20);
    expect(c.stats().host.known).toBe(moved.length);
    expect(c.stats().host.active).toBe(moved.length); // eagerly activated: they were active before
    await load(b, keys, counts);
    for (const k of keys) expect(await drive(bus, a.ref(Counter, k).get())).toBe(counts.get(k));
    expect(c.handoffs().length).toBeGreaterThan(0);
    // Each hand-off says where its time went: the fencing token, then the pull (the demo's trace).
    for (const h of c.handoffs()) {
      expect(h.takeMs).toBeGreaterThanOrEqual(0);
      expect(h.pullMs).toBeGreaterThanOrEqual(0);
      expect(h.takeMs! + h.pullMs!).toBeLessThanOrEqual(h.ms);
    }
  });

  it("a graceful leave under continuous asks: zero failures, every counter exact", async () => {
    const a = await startOn(bus, "a");
    const b = await startOn(bus, "b");
    const c = await startOn(bus, "c");
    const client = await startOn(bus, "cl", {}, true);
    const keys = Array.from({ length: 100 }, (_, i) => `g${i}`);
    const counts = new Map<string, number>();
    let failures = 0;
    let stop = false;
    const loop = (async () => {
      let i = 0;
      while (!stop) {
        const k = keys[i++ % keys.length]!;
        await client
          .ref(Counter, k)
          .add(1)
          .then(() => counts.set(k, (counts.get(k) ?? 0) + 1))
          .catch((e: unknown) => {
            if (failures++ === 0) console.log("first failure:", String(e));
          });
      }
    })();
    let ticks = true;
    const ticking = (async () => {
      while (ticks) await bus.clock.advance(1);
    })();
    await new Promise((r) => setTimeout(r, 50));
    await b.close();
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await loop; // the clock keeps ticking until the last ask is answered
    ticks = false;
    await ticking;
    expect(failures).toBe(0);
    expect(counts.size).toBeGreaterThan(10);
    for (const k of keys) expect(await drive(bus, a.ref(Counter, k).get()), k).toBe(counts.get(k) ?? 0);
    expect(b.stats().handoff.handedOff).toBeGreaterThan(0);
    expect(b.stats().handoff.outbox).toBe(0);
    void c;
  });

  it("a crashed node's keys are served again after the TTL (state lost without replication)", async () => {
    const a = await startOn(bus, "a");
    const bEp = bus.connect("b");
    const b = await startOn(bus, "b2");
    void bEp;
    const key = Array.from({ length: 50 }, (_, i) => `x${i}`).find((k) => a.node.place(k) === "b2")!;
    expect(await drive(bus, a.ref(Counter, key).add(7))).toBe(7);
    // vanish without leaving
    await (b.node.transport as { close(): Promise<void> }).close();
    const t0 = bus.clock.now();
    expect(await drive(bus, a.ref(Counter, key).add(1))).toBe(1);
    expect(bus.clock.now() - t0).toBeGreaterThan(TTL - HB);
  });

  it("duplicated and reordered deliveries never double-apply an ask or roll state back", async () => {
    bus = new SimBus(new VirtualClock(), { jitterMs: 4, duplicate: 0.3 });
    const a = await startOn(bus, "a");
    await startOn(bus, "b");
    const keys = Array.from({ length: 40 }, (_, i) => `d${i}`);
    const counts = new Map<string, number>();
    await load(a, keys, counts);
    const c = await startOn(bus, "c");
    await load(c, keys, counts);
    await drive(bus, c.close());
    await load(a, keys, counts);
    for (const k of keys) expect(await drive(bus, a.ref(Counter, k).get()), k).toBe(counts.get(k));
  });

  it("a node that closes hands off, and the pull of a partition is answered only to its owner", async () => {
    const a = await startOn(bus, "a");
    const b = await startOn(bus, "b");
    const keys = Array.from({ length: 50 }, (_, i) => `o${i}`);
    const counts = new Map<string, number>();
    await load(a, keys, counts);
    await drive(bus, a.close());
    // A stepwise leave (the default) announces the leave last, as close() resolves: let it arrive.
    await bus.clock.advance(HB);
    expect(b.node.members()).toEqual(["b"]);
    for (const k of keys) expect(await drive(bus, b.ref(Counter, k).get())).toBe(1);
    const ring = new Ring(["a", "b"], 64);
    expect(keys.some((k) => ring.place(k) === "a")).toBe(true);
  });
});

describe("local deadlines and activation errors", () => {
  it("a local ask whose handler never returns times out", async () => {
    const a = await startOn(bus, "a", { entities: [Counter, Slow] });
    const key = ["l1", "l2", "l3", "l4"].find((k) => a.node.place(k) === "a")!;
    const err = await drive(bus, a.ref(Slow, key).ask("hang", [], { timeout: 200 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
  });

  it("an onActivate that throws reaches local and remote callers as a HandlerError", async () => {
    class Grumpy extends Entity<number> {
      static readonly type = "grumpy";
      initialState() {
        return 0;
      }
      override onActivate() {
        throw new TypeError("not today");
      }
      poke() {
        return 1;
      }
    }
    const a = await startOn(bus, "a", { entities: [Grumpy] });
    const b = await startOn(bus, "b", { entities: [Grumpy] });
    for (const s of [a, b]) {
      const err = await drive(bus, s.ref(Grumpy, "g").poke()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HandlerError);
      expect((err as HandlerError).remoteName).toBe("TypeError");
    }
  });

  it("an empty key is refused at once", async () => {
    const a = await startOn(bus, "a");
    expect(() => a.ref(Counter, "")).toThrow(/non-empty string/);
    await expect(a.ask(Counter, "", "add", [1])).rejects.toThrow(/non-empty string/);
  });
});

describe("node-wide concurrency", () => {
  it("at most `concurrency` entities run handlers at once; the others wait their turn", async () => {
    let running = 0;
    let max = 0;
    class Busy extends Entity<number> {
      static readonly type = "busy";
      initialState() {
        return 0;
      }
      async work() {
        running++;
        max = Math.max(max, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return this.key;
      }
    }
    const a = await startOn(bus, "a", { entities: [Busy], concurrency: 2 });
    const keys = Array.from({ length: 8 }, (_, i) => `w${i}`).filter((k) => a.node.place(k) === "a");
    const results = await Promise.all(
      keys.map((k) => drive(bus, a.ref(Busy, k).ask("work", [], { timeout: 3_600_000 }))),
    );
    expect(results).toEqual(keys);
    expect(keys.length).toBeGreaterThan(2);
    expect(max).toBe(2);
  });
});
