// Durable reminders on the simulated bus with a virtual clock: they fire at their due time (not
// before), repeat, cancel, wake a passivated entity, move with a graceful hand-off, survive the
// owner's crash with replicas, come back from a store, and refuse bad arguments by name.
import {
  Entity,
  InvalidReminderError,
  memoryStore,
  NotSerializableError,
  type Sharding,
  type ShardingOptions,
} from "@keyhold/actors";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { beforeEach, describe, expect, it } from "vitest";
import { drive, HB, startOn, TTL } from "./support.js";

interface Fire {
  readonly key: string;
  readonly name: string;
  readonly payload: unknown;
  readonly at: number;
}

/** Every onReminder call of the test, in order, with the virtual time it ran at. */
let fires: Fire[] = [];
let overdue: number[] = [];
let bus: SimBus;

class Alarm extends Entity<{ fired: number; activations: number }> {
  static readonly type: string = "alarm";
  initialState() {
    return { fired: 0, activations: 0 };
  }
  override onActivate() {
    this.state.activations++;
  }
  at(name: string, at: number, payload?: unknown) {
    this.remind(name, { at }, payload);
  }
  every(name: string, every: number, at?: number) {
    this.remind(name, at === undefined ? { every } : { every, at });
  }
  cancel(name: string) {
    return this.cancelReminder(name);
  }
  raw(name: unknown, when: unknown, payload?: unknown) {
    this.remind(name as string, when as { at: number }, payload);
  }
  rawMap() {
    this.remind("m", { at: 0 }, new Map([[1, 2]]));
  }
  get() {
    return this.state;
  }
  override onReminder(name: string, payload: unknown, info: { due: number }) {
    this.state.fired++;
    // the due time it fires for is the virtual time it runs at: nothing here is late
    if (info.due !== bus.clock.now() && info.due > 0) overdue.push(info.due);
    fires.push({ key: this.key, name, payload, at: bus.clock.now() });
  }
}

/** The same alarm, with two warm standbys. */
class ReplicatedAlarm extends Alarm {
  static override readonly type = "ralarm";
  static readonly replicas = 3;
}

class NoHandler extends Entity<null> {
  static readonly type = "nohandler";
  initialState() {
    return null;
  }
  set() {
    this.remind("x", { at: 0 });
  }
}

beforeEach(() => {
  bus = new SimBus(new VirtualClock());
  fires = [];
  overdue = [];
});

function node(id: string, extra: Partial<ShardingOptions> = {}): Promise<Sharding> {
  return startOn(bus, id, { cluster: "rem", entities: [Alarm, ReplicatedAlarm, NoHandler], ...extra });
}

const now = () => bus.clock.now();
const firesOf = (key: string) => fires.filter((f) => f.key === key);

describe("reminders", () => {
  it("a one-shot reminder fires at its due time, not before, once, with its payload", async () => {
    const a = await node("a");
    const due = now() + 1000;
    await drive(bus, a.ref(Alarm, "k").at("wake", due, { n: 1 }));
    expect(a.stats().reminders.pending).toBe(1);
    await bus.clock.advance(due - 1 - now());
    expect(fires).toEqual([]);
    await bus.clock.advance(5);
    expect(fires).toEqual([{ key: "k", name: "wake", payload: { n: 1 }, at: due }]);
    expect(overdue).toEqual([]);
    await bus.clock.advance(5000);
    expect(fires).toHaveLength(1);
    expect(a.stats().reminders).toMatchObject({ pending: 0, fired: 1, failed: 0 });
    // the fire ran as a message: the state the handler changed is the entity's state
    expect((await drive(bus, a.ref(Alarm, "k").get())).fired).toBe(1);
    await drive(bus, a.close());
  });

  it("a repeating reminder fires every period until cancelled", async () => {
    const a = await node("a");
    const start = now();
    await drive(bus, a.ref(Alarm, "k").every("tick", 100));
    await bus.clock.advance(1050);
    expect(fires.map((f) => f.at - start)).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    expect(await drive(bus, a.ref(Alarm, "k").cancel("tick"))).toBe(true);
    expect(await drive(bus, a.ref(Alarm, "k").cancel("tick"))).toBe(false);
    await bus.clock.advance(1000);
    expect(fires).toHaveLength(10);
    expect(a.stats().reminders.pending).toBe(0);
    await drive(bus, a.close());
  });

  it("cancelled before it is due, a reminder never fires; setting a name again replaces it", async () => {
    const a = await node("a");
    const ref = a.ref(Alarm, "k");
    await drive(bus, ref.at("gone", now() + 500));
    await drive(bus, ref.at("moved", now() + 500, "first"));
    await drive(bus, ref.cancel("gone"));
    const later = now() + 2000;
    await drive(bus, ref.at("moved", later, "second"));
    await bus.clock.advance(1000);
    expect(fires).toEqual([]);
    await bus.clock.advance(1500);
    expect(fires).toEqual([{ key: "k", name: "moved", payload: "second", at: later }]);
    await drive(bus, a.close());
  });

  it("wakes a passivated entity, which runs onActivate again before onReminder", async () => {
    const a = await node("a", { idleMs: 200 });
    const due = now() + 5000;
    await drive(bus, a.ref(Alarm, "sleepy").at("wake", due));
    await bus.clock.advance(1000);
    expect(a.stats().host.active).toBe(0);
    expect(a.stats().host.passivations).toBe(1);
    await bus.clock.advance(due - now() + 5);
    expect(firesOf("sleepy")).toHaveLength(1);
    expect(a.stats().host.activations).toBe(2);
    // two activations: the first message, then the reminder's wake-up
    expect((await drive(bus, a.ref(Alarm, "sleepy").get())).activations).toBe(2);
    await drive(bus, a.close());
  });

  it("with a store, a passivated entity keeps its reminders on the node and fires", async () => {
    const a = await node("a", { idleMs: 200, store: memoryStore() });
    const due = now() + 3000;
    await drive(bus, a.ref(Alarm, "s").at("wake", due, 7));
    await bus.clock.advance(1000);
    expect(a.stats().host.active).toBe(0);
    // the dormant slot stays (it holds a reminder) even though a store would let it go
    expect(a.stats().host.known).toBe(1);
    await bus.clock.advance(due - now() + 5);
    expect(firesOf("s")).toEqual([{ key: "s", name: "wake", payload: 7, at: due }]);
    await bus.clock.advance(1000);
    // fired and idle again: nothing pending, so now the store alone holds it
    expect(a.stats().host.known).toBe(0);
    await drive(bus, a.close());
  });

  it("moves with a graceful hand-off and fires once, on the new owner", async () => {
    const a = await node("a");
    const b = await node("b");
    await bus.clock.advance(HB * 3);
    const keys = Array.from({ length: 20 }, (_, i) => `h-${i}`);
    const due = now() + 5000;
    for (const k of keys) await drive(bus, a.ref(Alarm, k).at("wake", due, k));
    const onA = keys.filter((k) => a.node.place(k) === "a");
    expect(onA.length).toBeGreaterThan(0);
    expect(a.stats().reminders.pending).toBe(onA.length);
    await drive(bus, a.close());
    expect(b.stats().reminders.pending).toBe(keys.length);
    await bus.clock.advance(due - now() + 5);
    for (const k of keys) expect(firesOf(k), k).toEqual([{ key: k, name: "wake", payload: k, at: due }]);
    expect(b.stats().reminders.fired).toBe(keys.length);
    await drive(bus, b.close());
  });

  it("a repeating reminder keeps its schedule across a hand-off", async () => {
    const a = await node("a");
    const b = await node("b");
    await bus.clock.advance(HB * 3);
    const key = Array.from({ length: 50 }, (_, i) => `r-${i}`).find((k) => a.node.place(k) === "a")!;
    const start = now();
    await drive(bus, a.ref(Alarm, key).every("tick", 1000));
    await bus.clock.advance(2500);
    await drive(bus, a.close());
    await bus.clock.advance(start + 6000 - now() + 5);
    const offsets = firesOf(key).map((f) => f.at - start);
    // every period fired once, whichever node held it: the hand-off neither skipped nor repeated one
    expect(offsets.slice(0, 6)).toEqual([1000, 2000, 3000, 4000, 5000, 6000]);
    await drive(bus, b.close());
  });

  it("with replicas, survives the owner's crash and fires once on the next owner", async () => {
    const [a, b, c] = [await node("a"), await node("b"), await node("c")];
    await bus.clock.advance(HB * 3);
    const keys = Array.from({ length: 30 }, (_, i) => `x-${i}`);
    const due = now() + 3000;
    for (const k of keys) await drive(bus, a.ref(ReplicatedAlarm, k).at("wake", due, k));
    const victim = [a, b, c].find((s) => keys.some((k) => a.node.place(k) === s.node.id))!;
    await victim.node.transport.close(); // kill -9: no leave, no hand-off
    await bus.clock.advance(due - now() + TTL + HB * 3);
    for (const k of keys) expect(firesOf(k), k).toHaveLength(1);
    const survivors = [a, b, c].filter((s) => s !== victim);
    expect(survivors.reduce((n, s) => n + s.stats().reminders.fired, 0)).toBe(keys.length);
    for (const s of survivors) await drive(bus, s.close());
  });

  it("without replicas or a store, a crash loses the reminders with the state", async () => {
    const a = await node("a");
    const b = await node("b");
    await bus.clock.advance(HB * 3);
    const key = Array.from({ length: 50 }, (_, i) => `l-${i}`).find((k) => a.node.place(k) === "a")!;
    await drive(bus, b.ref(Alarm, key).at("wake", now() + 2000));
    await a.node.transport.close();
    await bus.clock.advance(5000);
    expect(firesOf(key)).toEqual([]);
    await drive(bus, b.close());
  });

  it("with a store, reminders come back after a whole-cluster restart, before any message", async () => {
    const store = memoryStore();
    const a = await node("a", { store });
    const due = now() + 10_000;
    await drive(bus, a.ref(Alarm, "p").at("wake", due, "kept"));
    await drive(bus, a.close());
    expect(fires).toEqual([]);
    const b = await node("b", { store });
    // the store's reminder index told the new node which entities to load when it acquired them
    expect(b.stats().reminders.pending).toBe(1);
    expect(b.stats().host.active).toBe(0);
    await bus.clock.advance(due - now() + 5);
    expect(fires).toEqual([{ key: "p", name: "wake", payload: "kept", at: due }]);
    await drive(bus, b.close());
  });

  it("with a store and no replicas, a dormant entity's reminder survives its owner's crash", async () => {
    const store = memoryStore();
    const a = await node("a", { store, idleMs: 200 });
    const b = await node("b", { store, idleMs: 200 });
    await bus.clock.advance(HB * 3);
    const keys = Array.from({ length: 20 }, (_, i) => `d-${i}`);
    const due = now() + 4000;
    for (const k of keys) await drive(bus, b.ref(Alarm, k).at("wake", due, k));
    const onA = keys.filter((k) => a.node.place(k) === "a");
    expect(onA.length).toBeGreaterThan(0);
    await bus.clock.advance(1000); // all passivated: dormant, their state only in the store and on a
    expect(a.stats().host.active).toBe(0);
    await a.node.transport.close(); // kill -9
    await bus.clock.advance(due - now() + 5);
    for (const k of keys) expect(firesOf(k), k).toEqual([{ key: k, name: "wake", payload: k, at: due }]);
    // and the fire was stored: a later restart does not fire it again
    await drive(bus, b.close());
    const c = await node("c", { store });
    await bus.clock.advance(2000);
    expect(c.stats().reminders.pending).toBe(0);
    expect(fires).toHaveLength(keys.length);
    await drive(bus, c.close());
  });

  it("a reminder already overdue when it is set or adopted fires at once", async () => {
    const a = await node("a");
    await drive(bus, a.ref(Alarm, "late").at("past", now() - 60_000));
    await bus.clock.advance(5);
    expect(firesOf("late")).toHaveLength(1);
    await drive(bus, a.close());
  });

  it("refuses bad names, times, periods and payloads with errors naming the argument", async () => {
    const a = await node("a");
    const ref = a.ref(Alarm, "v");
    const fail = (p: Promise<unknown>) =>
      drive(bus, p).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => ref.raw("", { at: 0 }), /`name`/],
      [() => ref.raw("x".repeat(129), { at: 0 }), /`name`/],
      [() => ref.raw(42, { at: 0 }), /`name`/],
      [() => ref.raw("n", null), /`when`/],
      [() => ref.raw("n", {}), /neither/],
      [() => ref.raw("n", { at: Number.NaN }), /`when.at`/],
      [() => ref.raw("n", { at: "tomorrow" }), /`when.at`/],
      [() => ref.raw("n", { at: -1 }), /`when.at`/],
      [() => ref.raw("n", { every: 0 }), /`when.every`/],
      [() => ref.raw("n", { every: 1.5 }), /`when.every`/],
      [() => ref.raw("n", { every: 5 }), /`when.every`.*from 10/],
    ];
    for (const [p, re] of cases) {
      const err = await fail(p());
      expect(err, String(re)).toBeInstanceOf(InvalidReminderError);
      expect(err?.message).toMatch(re);
      expect((err as InvalidReminderError).code).toBe("KH_INVALID_REMINDER");
    }
    const notSer = await fail(ref.rawMap());
    expect(notSer).toBeInstanceOf(NotSerializableError);
    expect(notSer?.message).toMatch(/payload/);
    const noHandler = await fail(a.ref(NoHandler, "z").set());
    expect(noHandler).toBeInstanceOf(InvalidReminderError);
    expect(noHandler?.message).toMatch(/no onReminder/);
    expect(a.stats().reminders.pending).toBe(0);
    await drive(bus, a.close());
  });

  it("remind() outside a live entity fails clearly; onReminder is not a handler", async () => {
    const alarm = new Alarm();
    expect(() => alarm.remind("x", { at: 0 })).toThrow(/live entity only/);
    const a = await node("a");
    expect(() => (a.ref(Alarm, "k") as unknown as { onReminder: () => void }).onReminder).toThrow(
      /no handler "onReminder"/,
    );
    await drive(bus, a.close());
  });

  it("an onReminder that throws is counted, and a repeating reminder goes on", async () => {
    class Flaky extends Alarm {
      static override readonly type = "flaky";
      override onReminder(name: string, payload: unknown, info: { due: number }): void {
        super.onReminder(name, payload, info);
        throw new Error("boom");
      }
    }
    const a = await node("a", { entities: [Flaky] });
    await drive(bus, a.ref(Flaky, "f").every("tick", 100));
    await bus.clock.advance(350);
    expect(fires).toHaveLength(3);
    expect(a.stats().host.handlerErrors).toBe(3);
    await drive(bus, a.close());
  });
});
