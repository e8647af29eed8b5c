// The node's reminder schedule: the timer heap pops in due order whatever mix of pushes,
// removals and reschedules came before; reminders on the wire are validated like every record.
import { ACTOR_WIRE_VERSION } from "@keyhold/actors";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeReminders, MAX_REMINDERS_PER_ENTITY } from "../src/reminders.js";
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

  it("malformed reminders make the whole message malformed", () => {
    for (const bad of [
      "x",
      [["", 1, 0, null]],
      [["n", 1.5, 0, null]],
      [["n", 1, 5, null]],
      [["n", 1, 0]],
      [[7, 1, 0, null]],
      Array.from({ length: MAX_REMINDERS_PER_ENTITY + 1 }, (_, i) => [`n${i}`, 1, 0, null]),
    ]) {
      expect(isError(rep(bad)), JSON.stringify(bad).slice(0, 60)).toBe(true);
      expect(decodeReminders(bad)).toBeUndefined();
    }
  });
});
