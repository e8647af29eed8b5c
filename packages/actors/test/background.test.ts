// The background queue (background.ts): priorities, the concurrency bound, pause while fenced,
// close waiting for idle within its deadline; then on the simulated bus, that hand-off pulls go
// through it and steady asks never do, that a fenced node pauses it, and the option's check.
import { Sharding } from "@keyhold/actors";
import {
  type AdminReply,
  adminSubjects,
  decodeAdminReply,
  encodeAdmin,
  InvalidOptionError,
  isAdminMalformed,
  silentLogger,
} from "@keyhold/core";
import { SimBus, type SimEndpoint, VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import { Background, type BackgroundKind } from "../src/background.js";
import { Counter, drive, HB, startOn, TTL } from "./support.js";

/** A task that runs until `release()`; `started` tells whether it began. */
function gate() {
  let release!: () => void;
  const done = new Promise<void>((r) => {
    release = r;
  });
  const g = {
    started: false,
    release,
    run: () => {
      g.started = true;
      return done;
    },
  };
  return g;
}

const make = (concurrency: number, fenced = () => false) =>
  new Background({ concurrency, logger: silentLogger, nodeId: "t", fenced });

const tick = () => new Promise<void>((r) => setImmediate(r));

describe("Background queue", () => {
  it("runs waiting work by priority: hand-off pulls, then refills, then maintenance; FIFO within one", async () => {
    const bg = make(1);
    const order: string[] = [];
    const first = gate();
    const running = bg.add("maintenance", first.run, { dropped: undefined });
    const push = (kind: BackgroundKind, name: string) =>
      bg.add(kind, () => void order.push(name), { dropped: undefined });
    const all = [
      push("maintenance", "prune-1"),
      push("refill", "refill-1"),
      push("maintenance", "prune-2"),
      push("refill", "refill-2"),
      push("handoff", "pull-1"),
      push("handoff", "pull-2"),
    ];
    const s = bg.stats;
    expect([s.queuedHandoff, s.queuedRefill, s.queuedMaintenance, s.runningMaintenance]).toEqual([
      2, 2, 2, 1,
    ]);
    first.release();
    await Promise.all([running, ...all]);
    expect(order).toEqual(["pull-1", "pull-2", "refill-1", "refill-2", "prune-1", "prune-2"]);
  });

  it("a pull added behind waiting refills runs before them", async () => {
    const bg = make(2);
    const busy = [gate(), gate()];
    const refills = Array.from({ length: 5 }, () => gate());
    const pull = gate();
    const ps = [...busy, ...refills].map((g) => bg.add("refill", g.run, { dropped: undefined }));
    const pp = bg.add("handoff", pull.run, { dropped: undefined });
    expect(pull.started).toBe(false);
    busy[0]!.release();
    await tick();
    // The freed slot went to the pull, not to the first waiting refill.
    expect(pull.started).toBe(true);
    expect(refills.filter((g) => g.started)).toHaveLength(0);
    pull.release();
    for (const g of [busy[1]!, ...refills]) g.release();
    await Promise.all([...ps, pp]);
  });

  it("never runs more than `concurrency` tasks at once", async () => {
    const bg = make(3);
    let now = 0;
    let max = 0;
    const tasks = Array.from({ length: 40 }, (_, i) =>
      bg.add(
        i % 2 ? "refill" : "maintenance",
        async () => {
          now++;
          max = Math.max(max, now, bg.stats.pending);
          for (let j = 0; j < (i % 5) + 1; j++) await tick();
          now--;
          return i;
        },
        { dropped: -1 },
      ),
    );
    expect(bg.stats.pending).toBe(3);
    expect(bg.stats.size).toBe(37);
    expect(await Promise.all(tasks)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(max).toBe(3);
  });

  it("pauses while fenced: partition work waiting is dropped, the rest waits and resumes on unfence", async () => {
    let fenced = false;
    const bg = make(1, () => fenced);
    const blocker = gate();
    const b = bg.add("maintenance", blocker.run, { dropped: undefined });
    const pull = bg.add("handoff", () => "pulled", { dropped: "dropped", partition: true });
    let pruned = false;
    const prune = bg.add("maintenance", () => (pruned = true), { dropped: false });
    fenced = true;
    bg.fence(true);
    expect(await pull).toBe("dropped");
    expect(bg.stats.paused).toBe(1);
    // Partition work added while fenced is moot: dropped at once, never queued.
    expect(await bg.add("refill", () => "sent", { dropped: "dropped", partition: true })).toBe("dropped");
    blocker.release();
    await b;
    await tick();
    expect(pruned).toBe(false);
    expect(bg.stats.queuedMaintenance).toBe(1);
    fenced = false;
    bg.fence(false);
    expect(await prune).toBe(true);
    expect(bg.stats.paused).toBe(0);
    expect(bg.stats.dropped).toBe(2);
  });

  it("drops a waiting task whose `until` settles (its partition was released), never a running one", async () => {
    const bg = make(1);
    const blocker = gate();
    let lose!: () => void;
    const lost = new Promise<void>((r) => {
      lose = r;
    });
    const running = bg.add("handoff", blocker.run, { dropped: undefined, until: lost });
    const waiting = bg.add("handoff", () => "pulled", { dropped: "dropped", until: lost });
    lose();
    expect(await waiting).toBe("dropped");
    // The running one still holds the only slot.
    let next = false;
    const after = bg.add("maintenance", () => (next = true), { dropped: false });
    await tick();
    expect(next).toBe(false);
    expect(bg.stats.pending).toBe(1);
    let settled = false;
    void running.then(() => {
      settled = true;
    });
    await tick();
    expect(settled).toBe(false); // the running pull keeps its own outcome
    blocker.release();
    await running;
    expect(await after).toBe(true);
  });

  it("close waits for idle, and past its deadline drops what never started instead of hanging", async () => {
    const clock = new VirtualClock();
    const bg = make(1);
    const slow = gate();
    const a = bg.add("refill", slow.run, { dropped: undefined });
    const b = bg.add("refill", () => "ran", { dropped: "dropped" });
    let closed: boolean | undefined;
    const closing = bg.close(clock, 1000).then((idle) => {
      closed = idle;
    });
    await clock.advance(500);
    expect(closed).toBeUndefined(); // still waiting for the running task
    slow.release();
    await closing;
    expect(closed).toBe(true);
    expect(await Promise.all([a, b])).toEqual([undefined, "ran"]);

    const bg2 = make(1);
    const hang = bg2.add("handoff", () => new Promise<never>(() => {}), { dropped: "dropped" });
    const behind = bg2.add("maintenance", () => "ran", { dropped: "dropped" });
    let idle2: boolean | undefined;
    void bg2.close(clock, 1000).then((v) => {
      idle2 = v;
    });
    await clock.advance(999);
    expect(idle2).toBeUndefined();
    await clock.advance(2);
    expect(idle2).toBe(false);
    expect(await behind).toBe("dropped");
    void hang;
    // Closed: later work is dropped at once.
    expect(await bg2.add("refill", () => "ran", { dropped: "late" })).toBe("late");
  });

  it("a task that throws rejects its caller and is counted", async () => {
    const bg = make(2);
    await expect(
      bg.add(
        "refill",
        () => {
          throw new Error("boom");
        },
        { dropped: undefined },
      ),
    ).rejects.toThrow("boom");
    expect(bg.stats.failed).toBe(1);
  });
});

describe("Background work of a node (simulated bus)", () => {
  it("hand-off pulls go through the queue; a steady run of asks adds nothing to it", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await startOn(bus, "a");
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    for (const k of keys) await drive(bus, a.ref(Counter, k).add(1));
    const b = await startOn(bus, "b");
    await bus.clock.advance(HB * 5);
    // b took over partitions from a: each pull was a handoff task on b.
    expect(b.stats().background.addedHandoff).toBeGreaterThan(0);
    expect(b.stats().handoff.pulled).toBeGreaterThan(0);
    const before = [a.stats().background, b.stats().background];
    for (let round = 0; round < 5; round++)
      await drive(bus, Promise.all(keys.map((k) => (round % 2 ? a : b).ref(Counter, k).add(1))));
    const after = [a.stats().background, b.stats().background];
    for (let i = 0; i < 2; i++) {
      expect(after[i]!.addedHandoff).toBe(before[i]!.addedHandoff);
      expect(after[i]!.addedRefill).toBe(before[i]!.addedRefill);
    }
    expect(await drive(bus, a.ref(Counter, "k3").get())).toBe(6);
    await drive(bus, Promise.all([a.close(), b.close()]));
  });

  it("with backgroundConcurrency 1, a joining node pulls one partition at a time and loses nothing", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await startOn(bus, "a");
    const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);
    for (const k of keys) await drive(bus, a.ref(Counter, k).add(1));
    // Started by hand (not startOn), to watch its queue from the moment start() resolves.
    const starting = Sharding.start({
      transport: bus.connect("b"),
      clock: bus.clock,
      cluster: "t",
      nodeId: "b",
      heartbeatMs: HB,
      ttlMs: TTL,
      skewMs: 200,
      logger: silentLogger,
      entities: [Counter],
      handoffTimeoutMs: 2000,
      backgroundConcurrency: 1,
    });
    let started: Sharding | undefined;
    void starting.then((s) => {
      started = s;
    });
    while (!started) await bus.clock.advance(1);
    const b: Sharding = started;
    let maxRunning = 0;
    let maxWaiting = 0;
    for (let t = 0; t < HB * 20; t++) {
      const s = b.stats().background;
      maxRunning = Math.max(maxRunning, s.pending);
      maxWaiting = Math.max(maxWaiting, s.queuedHandoff);
      await bus.clock.advance(1);
    }
    const s = b.stats().background;
    expect(s.concurrency).toBe(1);
    expect(maxRunning).toBe(1);
    expect(s.addedHandoff).toBeGreaterThan(1);
    expect(maxWaiting).toBeGreaterThan(0); // pulls did wait for the one slot
    expect(b.node.ownedPartitions().every((p) => b.handoffs().some((h) => h.partition === p))).toBe(true);
    for (const k of keys) expect(await drive(bus, b.ref(Counter, k).get())).toBe(1);
    await drive(bus, Promise.all([a.close(), b.close()]));
  });

  it("a fenced node pauses its queue and resumes it once it sees its own heartbeats again", async () => {
    const bus = new SimBus(new VirtualClock());
    const ep: SimEndpoint = bus.connect("a");
    const a = await startOn(bus, "a", { transport: ep });
    const b = await startOn(bus, "b");
    await bus.clock.advance(HB * 3);
    expect(a.stats().background.paused).toBe(0);
    ep.disconnect();
    await bus.clock.advance(TTL + HB * 3);
    expect(a.node.fenced).toBe(true);
    expect(a.stats().background.paused).toBe(1);
    // Maintenance still comes due while fenced; it waits instead of running.
    await bus.clock.advance(2000 + HB);
    expect(a.stats().background.queuedMaintenance).toBeGreaterThan(0);
    ep.reconnect();
    await bus.clock.advance(HB * 4);
    expect(a.node.fenced).toBe(false);
    const s = a.stats().background;
    expect([s.paused, s.size]).toEqual([0, 0]);
    await drive(bus, Promise.all([a.close(), b.close()]));
  });

  it("closing a fenced node runs its waiting maintenance and ends; later work is dropped", async () => {
    const bus = new SimBus(new VirtualClock());
    const ep: SimEndpoint = bus.connect("a");
    const a = await startOn(bus, "a", { transport: ep });
    ep.disconnect();
    await bus.clock.advance(TTL + HB * 3 + 2000);
    expect(a.stats().background.paused).toBe(1);
    const waiting = a.stats().background.queuedMaintenance;
    expect(waiting).toBeGreaterThan(0);
    await drive(bus, a.close(), 1, 10_000);
    const s = a.stats().background;
    expect([s.size, s.pending, s.dropped]).toEqual([0, 0, 0]);
  });

  it("the admin report carries the background counters", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await startOn(bus, "a", { backgroundConcurrency: 5 });
    const ep = bus.connect("cli");
    const inbox = bus.newInbox();
    const replies: AdminReply[] = [];
    const sub = ep.subscribe(inbox, (m) => {
      const r = decodeAdminReply(m.data);
      if (isAdminMalformed(r)) throw new Error(`malformed reply: ${r.error}`);
      replies.push(r);
    });
    bus.route(ep, adminSubjects("t").all, encodeAdmin({ v: 1, k: "status" }), inbox);
    await bus.clock.advance(50);
    sub.unsubscribe();
    const report = replies[0]?.k === "report" ? replies[0].r : undefined;
    expect(report?.entities?.stats.background).toMatchObject({ concurrency: 5, paused: 0, size: 0 });
    expect(report?.entities?.stats.background?.addedHandoff).toBe(a.stats().background.addedHandoff);
    await drive(bus, a.close());
  });

  it("rejects a bad backgroundConcurrency with an error naming it", async () => {
    for (const value of [0, 1.5, "4", 2000]) {
      const err = await startOn(new SimBus(new VirtualClock()), "x", {
        backgroundConcurrency: value as never,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as InvalidOptionError).option).toBe("backgroundConcurrency");
      expect((err as Error).message).toContain(String(value));
    }
  });
});
