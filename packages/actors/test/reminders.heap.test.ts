// The node's reminder schedule: the timer heap pops in due order whatever mix of pushes,
// removals and reschedules came before; one due time is handed to the mailbox once, whatever
// copies of the reminder arrive meanwhile; reminders on the wire are validated like every record.
import { ACTOR_WIRE_VERSION, Entity } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defineEntity } from "../src/entity.js";
import type { Envelope } from "../src/mailbox.js";
import { decodeReminders, MAX_REMINDERS_PER_ENTITY, Reminders } from "../src/reminders.js";
import { SlotTable } from "../src/slots.js";
import { type HeapItem, TimerHeap } from "../src/timer-heap.js";
import { decodeRequest, encode, isError } from "../src/wire.js";

interface Item extends HeapItem {
  readonly id: number;
}

describe("timer heap", () => {
  it("property: pops in order of `at` after any pushes, removals and reschedules", () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("push" as const), at: fc.integer({ min: 0, max: 1000 }) }),
      fc.record({ k: fc.constant("remove" as const), n: fc.nat() }),
      fc.record({ k: fc.constant("move" as const), n: fc.nat(), at: fc.integer({ min: 0, max: 1000 }) }),
      fc.record({ k: fc.constant("pop" as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const heap = new TimerHeap<Item>();
        const model = new Map<number, Item>();
        let next = 0;
        for (const o of ops) {
          const live = [...model.values()];
          if (o.k === "push") {
            const it: Item = { id: next++, at: o.at, i: -1 };
            heap.push(it);
            model.set(it.id, it);
          } else if (o.k === "remove" && live.length > 0) {
            const it = live[o.n % live.length]!;
            expect(heap.remove(it)).toBe(true);
            expect(heap.remove(it)).toBe(false);
            model.delete(it.id);
          } else if (o.k === "move" && live.length > 0) {
            heap.schedule(live[o.n % live.length]!, o.at);
          } else if (o.k === "pop") {
            const min = Math.min(...live.map((x) => x.at));
            const it = heap.pop();
            if (live.length === 0) expect(it).toBeUndefined();
            else {
              expect(it!.at).toBe(min);
              model.delete(it!.id);
            }
          }
          expect(heap.size).toBe(model.size);
        }
        const out: number[] = [];
        for (let it = heap.pop(); it; it = heap.pop()) out.push(it.at);
        expect(out).toEqual([...model.values()].map((x) => x.at).sort((a, b) => a - b));
      }),
      { numRuns: 200 },
    );
  });

  it("refuses to hold one item twice", () => {
    const heap = new TimerHeap<Item>();
    const it: Item = { id: 1, at: 5, i: -1 };
    heap.push(it);
    expect(() => heap.push(it)).toThrow(/already/);
  });
});

describe("reminders on the wire", () => {
  const rec = (rem: unknown) => ({ t: "alarm", key: "k", s: 1, ver: 1, act: false, rem });
  const rep = (rem: unknown) =>
    decodeRequest(encode({ v: ACTOR_WIRE_VERSION, k: "rep", p: 0, from: "a", recs: [rec(rem) as never] }));

  it("travel with a record and come back the same", () => {
    const rem = [
      ["once", 1_700_000_000_000, 0, { x: [1, 2] }],
      ["tick", 5, 1000, null],
    ];
    const d = rep(rem);
    expect(isError(d)).toBe(false);
    expect(d).toMatchObject({ k: "rep", recs: [{ key: "k", rem }] });
  });

  it("malformed reminders make the record malformed where it is unpacked", () => {
    for (const bad of [
      "x",
      [["", 1, 0, null]],
      [["n", 1.5, 0, null]],
      [["n", 1, 5, null]],
      [["n", 1, 0]],
      [[7, 1, 0, null]],
      Array.from({ length: MAX_REMINDERS_PER_ENTITY + 1 }, (_, i) => [`n${i}`, 1, 0, null]),
    ]) {
      // Copy version 2: the message is judged by its headers; the packed record is refused
      // when unpacked (a hand-off, a promotion), so `recs` holds nothing.
      const d = rep(bad);
      expect(!isError(d) && d.k === "rep" && d.recs.length === 0, JSON.stringify(bad).slice(0, 60)).toBe(
        true,
      );
      expect(decodeReminders(bad)).toBeUndefined();
    }
  });
});

class Beep extends Entity<null> {
  static readonly type = "beep";
  initialState() {
    return null;
  }
  noop() {}
  calls: [string, number][] = [];
  override onReminder(name: string, _payload: unknown, info: { due: number }) {
    this.calls.push([name, info.due]);
  }
}

describe("reminder fires", () => {
  /** A node's reminders whose mailbox only queues: the test runs the queued turns itself. */
  function setup() {
    const clock = new VirtualClock(1_000_000);
    const queued: Envelope[] = [];
    let mayAct = true;
    const reminders = new Reminders({
      clock,
      logger: silentLogger,
      nodeId: "n",
      deliver: (_slot, env) => mayAct && queued.push(env) > 0,
    });
    const slot = new SlotTable(reminders).slot(defineEntity(Beep), "k", 0);
    const inst = new Beep();
    const runQueued = () => {
      for (const env of queued.splice(0)) {
        env.run!(inst);
        env.done(undefined);
      }
    };
    return { clock, queued, reminders, slot, inst, runQueued, deny: (v: boolean) => (mayAct = !v) };
  }

  it("a copy of the same reminder adopted while its fire is queued does not fire it twice", async () => {
    const { clock, queued, reminders, slot, inst, runQueued } = setup();
    reminders.set(slot, "r", { at: 1_000_100 }, "p");
    await clock.advance(100);
    expect(queued).toHaveLength(1);
    // a replica copy or a store load brings the same reminder back meanwhile
    reminders.adopt(slot, [["r", 1_000_100, 0, "p"]]);
    await clock.advance(1000);
    expect(queued).toHaveLength(1);
    runQueued();
    runQueued();
    expect(inst.calls).toEqual([["r", 1_000_100]]);
    expect(reminders.stats).toMatchObject({ pending: 0, fired: 1 });
  });

  it("a fire queued for a due time that was replaced or cancelled meanwhile does nothing", async () => {
    const { clock, queued, reminders, slot, inst, runQueued } = setup();
    reminders.set(slot, "a", { at: 1_000_050 });
    reminders.set(slot, "b", { at: 1_000_050 });
    await clock.advance(50);
    expect(queued).toHaveLength(2);
    reminders.set(slot, "a", { at: 1_000_500 });
    expect(reminders.cancel(slot, "b")).toBe(true);
    runQueued();
    expect(inst.calls).toEqual([]);
    await clock.advance(450);
    runQueued();
    expect(inst.calls).toEqual([["a", 1_000_500]]);
  });

  it("a due reminder this node may not act for is put off, then fires once it may", async () => {
    const { clock, queued, reminders, slot, inst, runQueued, deny } = setup();
    reminders.set(slot, "r", { every: 1000 });
    deny(true);
    await clock.advance(1000 + 350);
    expect(queued).toHaveLength(0);
    expect(reminders.stats.deferred).toBe(4); // at 1000, 1100, 1200, 1300
    deny(false);
    await clock.advance(100);
    runQueued();
    // the late fire is for the missed due time; the next keeps the original rhythm
    expect(inst.calls).toEqual([["r", 1_001_000]]);
    await clock.advance(2000 - 1450);
    runQueued();
    expect(inst.calls).toEqual([
      ["r", 1_001_000],
      ["r", 1_002_000],
    ]);
  });

  it("a fire whose message failed before it ran is tried again", async () => {
    const { clock, queued, reminders, slot, inst, runQueued } = setup();
    reminders.set(slot, "r", { at: 1_000_010 });
    await clock.advance(10);
    queued.splice(0)[0]!.done(new Error("mailbox full"));
    expect(reminders.stats.failed).toBe(1);
    await clock.advance(100);
    runQueued();
    expect(inst.calls).toEqual([["r", 1_000_010]]);
  });

  it("forgetting a slot takes its reminders out of the heap", async () => {
    const { clock, queued, reminders, slot } = setup();
    for (let i = 0; i < 5; i++) reminders.set(slot, `r${i}`, { at: 1_000_010 + i });
    reminders.forget(slot);
    expect(slot.reminders).toBeUndefined();
    expect(reminders.stats.pending).toBe(0);
    await clock.advance(1000);
    expect(queued).toHaveLength(0);
  });
});
