// Cost of 1,000,000 pending reminders on one node: heap bytes per reminder, and the CPU time of
// setting, firing and cancelling them through the node's one timer heap (reminders.ts). The
// fire path is measured up to the entity's mailbox turn (heap pop, ownership hand-over stub,
// next-due computation); the mailbox and handler are the ask path measured elsewhere.
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type Clock, silentLogger } from "@keyhold/core";
import { defineEntity, Entity } from "../../packages/actors/src/entity.js";
import type { Envelope } from "../../packages/actors/src/mailbox.js";
import { Reminders } from "../../packages/actors/src/reminders.js";
import { type Slot, SlotTable } from "../../packages/actors/src/slots.js";
import type { BenchContext, BenchModule, Row } from "../harness.js";

class Alarm extends Entity<null> {
  static readonly type = "alarm";
  initialState() {
    return null;
  }
  noop() {}
  override onReminder() {}
}

/** A clock that only moves when told: the bench calls the one pending timer itself. */
class ManualClock implements Clock {
  t = 1_700_000_000_000;
  pending: (() => void) | undefined;
  now(): number {
    return this.t;
  }
  monoNow(): number {
    return this.t;
  }
  setTimeout(fn: () => void): unknown {
    this.pending = fn;
    return 1;
  }
  clearTimeout(): void {
    this.pending = undefined;
  }
}

function gcFn(): () => void {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  return () => {
    gc();
    gc();
  };
}

interface Setup {
  readonly clock: ManualClock;
  readonly reminders: Reminders;
  readonly slots: Slot[];
  fired: number;
}

function setup(entities: number): Setup {
  const clock = new ManualClock();
  const def = defineEntity(Alarm);
  const inst = new Alarm();
  const s: Setup = { clock, reminders: undefined as never, slots: [], fired: 0 };
  const reminders = new Reminders({
    clock,
    logger: silentLogger,
    nodeId: "bench",
    // Stands in for dispatch + mailbox: runs the reminder's turn at once.
    deliver: (_slot: Slot, env: Envelope) => {
      env.run?.(inst);
      s.fired++;
      return true;
    },
  });
  const table = new SlotTable(reminders);
  for (let i = 0; i < entities; i++) s.slots.push(table.slot(def, `k-${i}`, i & 63));
  return Object.assign(s, { reminders });
}

/** Due times spread over an hour, in a fixed pseudo-random order. */
function dueTimes(n: number, base: number): Float64Array {
  const out = new Float64Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = base + 1000 + (x % 3_600_000);
  }
  return out;
}

function setAll(s: Setup, n: number, perEntity: number, due: Float64Array): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const slot = s.slots[Math.floor(i / perEntity)]!;
    s.reminders.set(slot, `r${i % perEntity}`, { at: due[i]! });
  }
  return performance.now() - t0;
}

const pendingOf = (s: Setup): number => s.reminders.stats.pending;

export const bench: BenchModule = {
  name: "reminders",
  about: "1M pending reminders: heap bytes per reminder; set, fire and cancel ns each",
  run: (ctx) => reminderCosts(ctx),
};

export async function reminderCosts(ctx: BenchContext): Promise<void> {
  const n = ctx.quick ? 50_000 : 1_000_000;
  const gc = gcFn();
  const rows: Row[] = [];
  for (const perEntity of [1, 10]) {
    const entities = n / perEntity;
    ctx.log(
      `reminders: ${n.toLocaleString("en-US")} reminders on ${entities.toLocaleString("en-US")} entities`,
    );
    const s = setup(entities);
    const due = dueTimes(n, s.clock.t);
    gc();
    const before = process.memoryUsage().heapUsed;
    const setMs = setAll(s, n, perEntity, due);
    gc();
    const bytes = (process.memoryUsage().heapUsed - before) / n;
    if (s.reminders.stats.pending !== n)
      throw new Error(`expected ${n} pending, got ${s.reminders.stats.pending}`);
    // Fire all of them: jump past the last due time and run the one timer until the heap is empty.
    s.clock.t += 3_700_000;
    const f0 = performance.now();
    while (s.clock.pending) {
      const fn = s.clock.pending;
      s.clock.pending = undefined;
      fn();
    }
    const fireMs = performance.now() - f0;
    if (s.fired !== n || pendingOf(s) !== 0) throw new Error(`fired ${s.fired} of ${n}`);
    // Cancel: set them again, then cancel every one in a scattered order.
    setAll(s, n, perEntity, due);
    const c0 = performance.now();
    for (let i = 0; i < n; i++) {
      const j = (i * 7919) % n;
      s.reminders.cancel(s.slots[Math.floor(j / perEntity)]!, `r${j % perEntity}`);
    }
    const cancelMs = performance.now() - c0;
    if (pendingOf(s) !== 0) throw new Error("cancel left reminders behind");
    const m = `reminders[${n}x${perEntity}]`;
    ctx.figure(`${m}.bytesPerReminder`, bytes, "B");
    ctx.figure(`${m}.setNs`, (setMs * 1e6) / n, "ns");
    ctx.figure(`${m}.fireNs`, (fireMs * 1e6) / n, "ns");
    ctx.figure(`${m}.cancelNs`, (cancelMs * 1e6) / n, "ns");
    rows.push({
      reminders: n,
      "per entity": perEntity,
      "heap B/reminder": bytes,
      "set ns": (setMs * 1e6) / n,
      "fire ns": (fireMs * 1e6) / n,
      "cancel ns": (cancelMs * 1e6) / n,
      "set+fire+cancel s": (setMs + fireMs + cancelMs) / 1000,
    });
  }
  ctx.table(
    "Pending reminders on one node: one timer heap, one clock timer",
    rows,
    "heapUsed after gc() x2, after minus before setting N reminders (due over one hour) on existing slots;\n" +
      "set = validate + heap insert; fire = heap pop + hand-over + run turn (mailbox and handler excluded);\n" +
      "cancel = heap removal in scattered order. One process, single-threaded.",
  );
}
