// Durable reminders: `this.remind(name, { at } | { every }, payload?)` on an entity, fired through
// its `onReminder(name, payload)` handler on whichever node owns the key when they fall due.
//
// A reminder is part of its entity's state. It lives in the entity's slot (slots.ts) next to the
// state and version, so it travels wherever the record travels: hand-offs, replica copies,
// refills and store writes (as `rem`). A slot that holds reminders is kept in memory while the
// entity is dormant, even with a store, so the node that owns the key always knows its due
// times. The node keeps ONE timer heap (timer-heap.ts) over the reminders of every slot it holds
// and ONE clock timer for the earliest of them. A due reminder becomes a message in the entity's
// mailbox (activating it if passivated) and goes through the dispatcher's ownership check like
// any message; the message that runs `onReminder` also moves the reminder to its next due time
// (or removes it), so that change is made durable with the handler's own version bump.
// Invariant: one reminder (entity, name, due time) is in flight at most once per node; a copy on
// another node fires again only if the first owner died before the fire was replicated or stored
// (at least once, deduplicated per due time).
import type { Clock, Logger } from "@keyhold/core";
import type { Entity, EntityClass } from "./entity.js";
import { InvalidReminderError } from "./errors.js";
import type { Envelope } from "./mailbox.js";
import { assertSerializable } from "./serializable.js";
import type { Slot } from "./slots.js";
import { type HeapItem, TimerHeap } from "./timer-heap.js";

/** When a reminder is due: once `at` a time, or `every` ms (first at `at`, or one period from now). */
export type ReminderSchedule =
  | { readonly at: number | Date; readonly every?: undefined }
  | { readonly every: number; readonly at?: number | Date | undefined };

/** Longest reminder name, in UTF-16 units. */
export const MAX_REMINDER_NAME = 128;
/** Most reminders one entity may hold. */
export const MAX_REMINDERS_PER_ENTITY = 1000;
/** Shortest period of a repeating reminder, in ms. */
export const MIN_REMINDER_EVERY_MS = 10;
/** Longest period of a repeating reminder, in ms (about 10 years). */
export const MAX_REMINDER_EVERY_MS = 10 * 366 * 24 * 3600 * 1000;
/** How long a due reminder waits before it is tried again when this node may not act for it now. */
export const REMINDER_RETRY_MS = 100;
/** Most reminders handed to mailboxes in one turn of the event loop. */
const FIRES_PER_TURN = 10_000;
/** The longest delay a Node.js timer accepts. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A reminder as it travels in an entity record: [name, due (epoch ms), every (0: once), payload]. */
export type WireReminder = readonly [string, number, number, unknown];

/** One pending reminder of one entity, and its entry in the node's heap. */
export interface Reminder extends HeapItem {
  readonly name: string;
  readonly slot: Slot;
  /** The due time this reminder fires for next (epoch ms on the owner's clock). */
  due: number;
  /** Period of a repeating reminder; 0 for a one-shot. */
  every: number;
  payload: unknown;
  /** A fire for `due` is in a mailbox now (the reminder is out of the heap meanwhile). */
  inFlight: boolean;
}

export interface ReminderStats {
  /** Reminders held on this node (entities it owns, active or dormant). */
  pending: number;
  /** onReminder calls started. */
  fired: number;
  /** Due reminders put off because this node could not act for the key at that moment. */
  deferred: number;
  /** onReminder calls that threw or whose message failed. */
  failed: number;
}

export interface RemindersParams {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly nodeId: string;
  /**
   * Hands a due reminder's message to its entity when this node owns and serves the key now
   * (dispatch.ts, the ownership check); false when it may not act for it at this moment.
   */
  readonly deliver: (slot: Slot, env: Envelope) => boolean;
}

const SCOPE = Symbol("keyhold.reminders");

interface Scope {
  readonly reminders: Reminders;
  readonly slot: Slot;
}

export interface ReminderScope {
  set(name: string, when: ReminderSchedule, payload?: unknown): void;
  cancel(name: string): boolean;
}

/** The reminders of the entity instance `inst`, for Entity.remind/cancelReminder. */
export function reminderScope(inst: Entity<unknown>, method: string): ReminderScope {
  const scope = (inst as unknown as { [SCOPE]?: Scope })[SCOPE];
  if (scope === undefined && typeof inst.onReminder !== "function")
    return { set: (name) => noHandler(inst.constructor as EntityClass, name), cancel: () => false };
  if (scope === undefined || scope.slot.instance !== inst) {
    throw new InvalidReminderError(
      `${method}() works on a live entity only (in a handler, onActivate, onReminder or onPassivate), not in a constructor or after passivation`,
    );
  }
  return {
    set: (name, when, payload) => scope.reminders.set(scope.slot, name, when, payload),
    cancel: (name) => scope.reminders.cancel(scope.slot, name),
  };
}

function noHandler(cls: EntityClass, name: string): never {
  const what = `Entity class ${cls.name} (${cls.type}) sets reminder ${show(name)}`;
  throw new InvalidReminderError(`${what} but has no onReminder(name, payload) handler`);
}

/** The reminders of a slot as they travel in its record; undefined when it has none. */
export function wireReminders(slot: Slot): WireReminder[] | undefined {
  const m = slot.reminders;
  if (m === undefined || m.size === 0) return undefined;
  const out: WireReminder[] = [];
  for (const r of m.values()) out.push([r.name, r.due, r.every, r.payload]);
  return out;
}

/** Validated reminders of a record from the wire or the store, or undefined when malformed. */
export function decodeReminders(x: unknown): WireReminder[] | undefined {
  if (!Array.isArray(x) || x.length > MAX_REMINDERS_PER_ENTITY) return undefined;
  const out: WireReminder[] = [];
  for (const e of x as unknown[]) {
    if (!Array.isArray(e) || e.length !== 4) return undefined;
    const [name, due, every] = e as unknown[];
    if (!isReminderName(name) || !Number.isSafeInteger(due)) return undefined;
    if (every !== 0 && !isEvery(every)) return undefined;
    out.push([name, due as number, every as number, e[3]]);
  }
  return out;
}

function isReminderName(x: unknown): x is string {
  return typeof x === "string" && x.length > 0 && x.length <= MAX_REMINDER_NAME;
}

function isEvery(x: unknown): x is number {
  return (
    Number.isSafeInteger(x) &&
    (x as number) >= MIN_REMINDER_EVERY_MS &&
    (x as number) <= MAX_REMINDER_EVERY_MS
  );
}

function show(x: unknown): string {
  if (x instanceof Date) return `Date(${String(x.getTime())})`;
  if (typeof x === "string") return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}...` : x);
  if (typeof x === "object" && x !== null) return Array.isArray(x) ? "an array" : "an object";
  return String(x);
}

/** A time argument in epoch ms (whole ms, rounded up), or an error naming the argument. */
function timeOf(x: unknown, arg: string): number {
  const ms = x instanceof Date ? x.getTime() : x;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > 8.64e15) {
    throw new InvalidReminderError(
      `Expected \`${arg}\` to be a Date or epoch milliseconds (a finite number >= 0), got ${show(x)}`,
    );
  }
  return Math.ceil(ms);
}

const NO_ARGS: readonly unknown[] = [];

/** The mailbox message of one fire: one object per fire, its methods on the prototype. */
class Fire implements Envelope {
  readonly h = "onReminder";
  readonly a = NO_ARGS;
  readonly #owner: Reminders;
  readonly #r: Reminder;
  readonly #due: number;
  constructor(owner: Reminders, r: Reminder, due: number) {
    this.#owner = owner;
    this.#r = r;
    this.#due = due;
  }
  run(inst: Entity<unknown>): unknown {
    return this.#owner.run(this.#r, this.#due, inst);
  }
  done(err: unknown): void {
    this.#owner.ended(this.#r, this.#due, err);
  }
}

/** The node's reminders: one heap, one clock timer, and the path from a due time to onReminder. */
export class Reminders {
  readonly #p: RemindersParams;
  readonly #heap = new TimerHeap<Reminder>();
  readonly stats: ReminderStats = { pending: 0, fired: 0, deferred: 0, failed: 0 };
  #timer: unknown;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;

  constructor(params: RemindersParams) {
    this.#p = params;
  }

  /** Lets a new live instance of `slot` call remind/cancelReminder (lifecycle.ts, on activation). */
  bind(inst: Entity<unknown>, slot: Slot): void {
    if (typeof inst.onReminder !== "function") return; // none can be set: no scope (48 B/entity)
    Object.defineProperty(inst, SCOPE, {
      value: { reminders: this, slot },
      enumerable: false,
      configurable: true,
    });
  }

  /** Sets (or replaces) reminder `name` of the entity in `slot`. */
  set(slot: Slot, name: string, when: ReminderSchedule, payload?: unknown): void {
    if (!isReminderName(name)) {
      throw new InvalidReminderError(
        `Expected \`name\` to be a non-empty string of at most ${MAX_REMINDER_NAME} characters, got ${show(name)}`,
      );
    }
    if (typeof (slot.def.cls.prototype as Entity).onReminder !== "function") noHandler(slot.def.cls, name);
    if (typeof when !== "object" || when === null) {
      throw new InvalidReminderError(`Expected \`when\` to be { at } or { every }, got ${show(when)}`);
    }
    const every = when.every;
    if (every !== undefined && !isEvery(every)) {
      throw new InvalidReminderError(
        `Expected \`when.every\` to be an integer number of ms from ${MIN_REMINDER_EVERY_MS} to ${MAX_REMINDER_EVERY_MS}, got ${show(every)}`,
      );
    }
    if (every === undefined && when.at === undefined) {
      throw new InvalidReminderError(
        "Expected `when` to give `at` (a time) or `every` (a period in ms), got neither",
      );
    }
    const due = when.at !== undefined ? timeOf(when.at, "when.at") : this.#p.clock.now() + every!;
    assertSerializable(payload, `the payload of reminder ${show(name)}`, "payload");
    let m = slot.reminders;
    const cur = m?.get(name);
    if (cur === undefined && (m?.size ?? 0) >= MAX_REMINDERS_PER_ENTITY) {
      throw new InvalidReminderError(
        `${slot.def.type}/${slot.key} already holds ${MAX_REMINDERS_PER_ENTITY} reminders; cancel one before setting ${show(name)}`,
      );
    }
    if (m === undefined) {
      m = new Map();
      slot.reminders = m;
    }
    if (cur !== undefined) {
      cur.due = due;
      cur.every = every ?? 0;
      cur.payload = payload;
      cur.inFlight = false; // a fire under way for the old due time is now stale
      this.#heap.schedule(cur, due);
    } else {
      const r: Reminder = { name, slot, due, every: every ?? 0, payload, inFlight: false, at: due, i: -1 };
      m.set(name, r);
      this.#heap.push(r);
      this.stats.pending++;
    }
    this.#arm();
  }

  /** Cancels reminder `name` of the entity in `slot`; false when there was none. */
  cancel(slot: Slot, name: string): boolean {
    if (typeof name !== "string") {
      throw new InvalidReminderError(`Expected \`name\` to be a string, got ${show(name)}`);
    }
    const r = slot.reminders?.get(name);
    if (r === undefined) return false;
    this.#delete(r);
    return true;
  }

  /**
   * Replaces the reminders of `slot` with those of a record (hand-off, replica copy, refill or
   * store load). A reminder unchanged in name, due time and period keeps its place, so a fire
   * already in flight for it is not repeated.
   */
  adopt(slot: Slot, rem: readonly WireReminder[] | undefined): void {
    const old = slot.reminders;
    const next = new Map<string, Reminder>();
    for (const [name, due, every, payload] of rem ?? []) {
      const cur = old?.get(name);
      if (cur !== undefined && cur.due === due && cur.every === every) {
        cur.payload = payload;
        next.set(name, cur);
        old!.delete(name);
        continue;
      }
      const r: Reminder = { name, slot, due, every, payload, inFlight: false, at: due, i: -1 };
      next.set(name, r);
      this.#heap.push(r);
      this.stats.pending++;
    }
    if (old) for (const r of old.values()) this.#unschedule(r);
    slot.reminders = next.size > 0 ? next : undefined;
    this.#arm();
  }

  /** The slot is dropped (handed off, or given up): its reminders leave this node's heap. */
  forget(slot: Slot): void {
    const m = slot.reminders;
    if (m === undefined) return;
    for (const r of m.values()) this.#unschedule(r);
    slot.reminders = undefined;
  }

  /** Stops the timer; reminders stay in their slots (and records) but no longer fire here. */
  close(): void {
    this.#closed = true;
    this.#p.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #delete(r: Reminder): void {
    this.#unschedule(r);
    const m = r.slot.reminders;
    m?.delete(r.name);
    if (m !== undefined && m.size === 0) r.slot.reminders = undefined;
  }

  #unschedule(r: Reminder): void {
    this.#heap.remove(r);
    r.inFlight = false;
    this.stats.pending--;
  }

  /** Keeps the one clock timer set for the earliest reminder. */
  #arm(): void {
    if (this.#closed) return;
    const top = this.#heap.peek();
    if (top === undefined || (this.#timer !== undefined && this.#timerAt <= top.at)) return;
    this.#p.clock.clearTimeout(this.#timer);
    this.#timerAt = top.at;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, top.at - this.#p.clock.now()));
    this.#timer = this.#p.clock.setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#p.clock.now();
    for (let n = 0; n < FIRES_PER_TURN; n++) {
      const top = this.#heap.peek();
      if (top === undefined || top.at > now) break;
      this.#heap.remove(top);
      this.#fire(top, now);
    }
    this.#arm();
  }

  /** Hands one due reminder to its entity, or puts it off when this node may not act for it now. */
  #fire(r: Reminder, now: number): void {
    r.inFlight = true;
    if (!this.#p.deliver(r.slot, new Fire(this, r, r.due))) {
      this.stats.deferred++;
      this.#retry(r, now);
    }
  }

  /** @internal The fire's message ended (Fire.done); `err` when it failed, before or in onReminder. */
  ended(r: Reminder, due: number, err: unknown): void {
    if (err === undefined) return;
    this.stats.failed++;
    this.#p.logger.warn(
      `node ${this.#p.nodeId}: reminder ${show(r.name)} of ${r.slot.def.type}/${r.slot.key} (due ${due}) failed: ${String(err)}`,
    );
    // The message never ran onReminder (activation failed, mailbox full, store refused): the
    // due time was not consumed, so try again shortly if the reminder is still ours.
    if (r.inFlight && r.due === due && r.slot.reminders?.get(r.name) === r) this.#retry(r);
  }

  #retry(r: Reminder, now = this.#p.clock.now()): void {
    r.inFlight = false;
    this.#heap.schedule(r, now + REMINDER_RETRY_MS);
    this.#arm();
  }

  /**
   * @internal Runs in the entity's mailbox turn (Fire.run): consumes due time `due` (the next period, or the end of
   * a one-shot) and calls onReminder. A fire whose reminder was cancelled or reset meanwhile
   * does nothing.
   */
  run(r: Reminder, due: number, inst: Entity<unknown>): unknown {
    if (!r.inFlight || r.due !== due || r.slot.reminders?.get(r.name) !== r) return undefined;
    r.inFlight = false;
    if (r.every > 0) {
      // Missed periods (the node was down, or busy) collapse into this one fire.
      const now = this.#p.clock.now();
      const behind = now >= due + r.every ? Math.floor((now - due) / r.every) : 0;
      r.due = due + r.every * (behind + 1);
      this.#heap.schedule(r, r.due);
      this.#arm();
    } else this.#delete(r);
    this.stats.fired++;
    const handler = (inst as unknown as { onReminder: (n: string, p: unknown, i: object) => unknown })
      .onReminder;
    return handler.call(inst, r.name, r.payload, { due });
  }
}
