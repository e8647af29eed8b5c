// The entities one node hosts: a slot per known key holding its state and version, a live
// instance while active, and a bounded mailbox drained one message at a time under a
// node-wide concurrency limit. Activation, passivation (idle, LRU cap, hand-off) live here.
import type { Clock, Logger } from "@keyhold/core";
import type { Entity, EntityDefinition } from "./entity.js";
import {
  ActorError,
  fromWireError,
  HandlerError,
  MailboxFullError,
  toWireError,
  UnknownHandlerError,
  type WireError,
} from "./errors.js";
import { assertSerializable, type EntityRecord, RECENT_ASKS, type RecentAsk } from "./wire.js";

/** One message for an entity; `done` is called exactly once with the outcome. */
export interface Envelope {
  /** The ask's message id, for asks that arrived over the wire (retries carry the same id). */
  readonly id?: string | undefined;
  readonly h: string;
  readonly a: readonly unknown[];
  readonly done: (err: unknown, result?: unknown) => void;
}

/** Everything this node knows of one entity key. */
export interface Slot {
  readonly def: EntityDefinition;
  readonly key: string;
  readonly partition: number;
  /** The state while no instance is live (the instance holds it otherwise). */
  state: unknown;
  version: number;
  /** The durable store's revision of this entity, when a store is configured. */
  revision: number | undefined;
  /** Recently applied asks of a replicated or stored entity (see RecentAsk). */
  recent: RecentAsk[] | undefined;
  instance: Entity<unknown> | undefined;
  queue: Envelope[] | undefined;
  running: boolean;
  lastUsed: number;
  /** When the slot last moved to the young end of the LRU order. */
  touched: number;
  /** Waiters for the mailbox to go idle (hand-off drains). */
  idle: (() => void)[] | undefined;
  /** Set for an eager activation with no message. */
  activateOnly: boolean;
}

export interface HostParams {
  readonly mailboxSize: number;
  readonly concurrency: number;
  readonly maxActive: number;
  readonly idleMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly nodeId: string;
  /** Loads durable state into the slot before activation (a store is configured). */
  readonly load?: ((slot: Slot) => Promise<void>) | undefined;
  /**
   * Makes a handled message durable (store write, replica quorum) before its caller is
   * answered; undefined when the entity type needs neither. A rejection fails the message.
   */
  readonly afterHandle?: ((slot: Slot) => Promise<void> | undefined) | undefined;
  /** Drop a passivated (idle or over the cap) entity from memory: a store holds its state. */
  readonly forgetDormant?: boolean | undefined;
  /** Whether an entity type remembers its applied asks (replicated or stored types). */
  readonly tracksAsks?: ((def: EntityDefinition) => boolean) | undefined;
}

export function emptyHostStats(): HostStats {
  return { activations: 0, passivations: 0, handled: 0, handlerErrors: 0, mailboxFull: 0 };
}

export interface HostStats {
  activations: number;
  passivations: number;
  handled: number;
  handlerErrors: number;
  mailboxFull: number;
}

export class EntityHost {
  readonly #p: HostParams;
  // Per entity type, per key: no id string built per message.
  readonly #slots = new Map<string, Map<string, Slot>>();
  #slotCount = 0;
  readonly #byPartition = new Map<number, Set<Slot>>();
  // Insertion-ordered: the first entry is the least recently used live instance.
  readonly #active = new Set<Slot>();
  // The node-wide concurrency limit: entities draining now, and those waiting their turn.
  // A counter and a FIFO rather than p-queue: p-queue's per-task bookkeeping (ids, events,
  // microtasks) cost two thirds of a local ask, and draining is already one task per entity.
  #running = 0;
  readonly #waiting: Slot[] = [];
  #waitingHead = 0;
  #sweepTimer: unknown;
  readonly stats: HostStats = emptyHostStats();

  constructor(params: HostParams) {
    this.#p = params;
    if (params.idleMs > 0) this.#armSweep();
  }

  get activeCount(): number {
    return this.#active.size;
  }

  get slotCount(): number {
    return this.#slotCount;
  }

  /** Per entity type, [active instances, known entities]; and messages queued in all mailboxes. */
  census(): { types: [string, number, number][]; queued: number } {
    const active = new Map<string, number>();
    for (const s of this.#active) active.set(s.def.type, (active.get(s.def.type) ?? 0) + 1);
    let queued = 0;
    const types: [string, number, number][] = [];
    for (const [type, byKey] of this.#slots) {
      for (const s of byKey.values()) queued += s.queue?.length ?? 0;
      types.push([type, active.get(type) ?? 0, byKey.size]);
    }
    return { types, queued };
  }

  /** The slot of an entity, created empty (initial state, version 0) when unknown. */
  slot(def: EntityDefinition, key: string, partition: number): Slot {
    let byKey = this.#slots.get(def.type);
    if (byKey === undefined) {
      byKey = new Map();
      this.#slots.set(def.type, byKey);
    }
    let s = byKey.get(key);
    if (s === undefined) {
      s = {
        def,
        key,
        partition,
        state: undefined,
        version: 0,
        revision: undefined,
        recent: undefined,
        instance: undefined,
        queue: undefined,
        running: false,
        lastUsed: 0,
        touched: 0,
        idle: undefined,
        activateOnly: false,
      };
      byKey.set(key, s);
      this.#slotCount++;
      let set = this.#byPartition.get(partition);
      if (!set) {
        set = new Set();
        this.#byPartition.set(partition, set);
      }
      set.add(s);
    }
    return s;
  }

  /**
   * Queues a message; fails it at once with MailboxFullError when the mailbox is full. When the
   * entity is idle and the node under its concurrency limit, the message runs right away, and a
   * synchronous handler completes before enqueue() returns.
   */
  enqueue(slot: Slot, env: Envelope): void {
    if (!slot.def.handlers.has(env.h)) {
      env.done(new UnknownHandlerError(slot.def.type, env.h));
      return;
    }
    if (!slot.running && slot.queue === undefined && this.#running < this.#p.concurrency) {
      slot.running = true;
      this.#running++;
      this.#pump(slot, env);
      return;
    }
    if (slot.queue === undefined) slot.queue = [];
    const q = slot.queue;
    if (q.length >= this.#p.mailboxSize) {
      this.stats.mailboxFull++;
      env.done(new MailboxFullError(slot.def.type, slot.key, this.#p.mailboxSize));
      return;
    }
    q.push(env);
    if (!slot.running) {
      slot.running = true;
      this.#schedule(slot);
    }
  }

  /** Starts draining `slot` now if under the concurrency limit, else when a turn frees up. */
  #schedule(slot: Slot): void {
    if (this.#running < this.#p.concurrency) {
      this.#running++;
      this.#pump(slot, undefined);
    } else this.#waiting.push(slot);
  }

  #starting = false;

  /** Gives back a concurrency turn and hands free turns to waiting entities (a loop, not recursion). */
  #endTurn(): void {
    this.#running--;
    if (this.#starting) return; // the loop below, further up the stack, picks them up
    this.#starting = true;
    try {
      while (this.#running < this.#p.concurrency && this.#waitingHead < this.#waiting.length) {
        const slot = this.#waiting[this.#waitingHead++]!;
        if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
          this.#waiting.splice(0, this.#waitingHead);
          this.#waitingHead = 0;
        }
        this.#running++;
        this.#pump(slot, undefined);
      }
    } finally {
      this.#starting = false;
    }
  }

  /**
   * Runs `first`, then the queued messages of `slot`, one at a time, synchronously for as long
   * as nothing needs waiting for; on a promise (activation, an async handler, a durable write) it
   * continues when that settles. Called holding the slot (`running`) and a concurrency turn;
   * gives both back when the mailbox is empty.
   */
  #pump(slot: Slot, first: Envelope | undefined): void {
    let env = first;
    for (;;) {
      if (
        slot.instance === undefined &&
        (env !== undefined || (slot.queue?.length ?? 0) > 0 || slot.activateOnly)
      ) {
        slot.activateOnly = false;
        const pending = env;
        this.#activate(slot).then(
          () => this.#pump(slot, pending),
          (err: unknown) => {
            // Activation failed: fail what is queued; the next message tries again. A
            // throwing onActivate reaches local and remote callers alike as a HandlerError.
            const failure = asHandlerError(err);
            pending?.done(failure);
            for (const e of (slot.queue ?? []).splice(0)) e.done(failure);
            this.#p.logger.warn(
              `node ${this.#p.nodeId}: activating ${slot.def.type}/${slot.key} failed: ${String(err)}`,
            );
            this.#idle(slot);
          },
        );
        return;
      }
      if (env === undefined) env = slot.queue?.shift();
      if (env === undefined) {
        this.#idle(slot);
        return;
      }
      const wait = this.#run(slot, env);
      env = undefined;
      if (wait !== undefined) {
        wait.then(() => this.#pump(slot, undefined));
        return;
      }
    }
  }

  /** The mailbox is empty: let go of the slot and the turn, wake whoever waits for idleness. */
  #idle(slot: Slot): void {
    slot.running = false;
    if (slot.queue !== undefined && slot.queue.length === 0) slot.queue = undefined;
    if (slot.queue !== undefined) {
      // Messages arrived while activation failed: try again.
      slot.running = true;
      this.#pump(slot, undefined);
      return;
    }
    if (slot.idle) {
      const waiters = slot.idle;
      slot.idle = undefined;
      for (const w of waiters) w();
    }
    this.#endTurn();
  }

  /** Runs one message; returns a promise when it must be waited for, else completes it now. */
  #run(slot: Slot, env: Envelope): Promise<void> | undefined {
    const inst = slot.instance;
    if (inst === undefined) {
      // The entity was given up (its durable write was refused): the rest go back to routing.
      env.done(this.#givenUp ?? new Error("entity given up"));
      return undefined;
    }
    slot.lastUsed = this.#p.clock.now();
    if (env.id !== undefined && slot.recent !== undefined) {
      const seen = slot.recent.find((r) => r[0] === env.id);
      if (seen) {
        // Applied before (on this node or a previous owner): answer, do not apply again.
        if (seen[1]) env.done(undefined, seen[2]);
        else
          env.done(
            fromWireError(seen[2] as WireError, { type: slot.def.type, key: slot.key, handler: env.h }),
          );
        return undefined;
      }
    }
    let result: unknown;
    try {
      const fn = (inst as unknown as Record<string, (...a: unknown[]) => unknown>)[env.h]!;
      result = fn.apply(inst, env.a as unknown[]);
    } catch (err) {
      this.stats.handlerErrors++;
      return this.#complete(slot, env, undefined, asHandlerError(err));
    }
    if (
      result !== null &&
      typeof result === "object" &&
      typeof (result as Promise<unknown>).then === "function"
    ) {
      return (result as Promise<unknown>).then(
        (r) => this.#complete(slot, env, r, undefined),
        (err: unknown) => {
          this.stats.handlerErrors++;
          return this.#complete(slot, env, undefined, asHandlerError(err));
        },
      );
    }
    return this.#complete(slot, env, result, undefined);
  }

  /** After the handler: version, remembered ask, durable write, then the answer. */
  #complete(slot: Slot, env: Envelope, result: unknown, failure: unknown): Promise<void> | undefined {
    // The handler may have changed state even when it threw.
    slot.version++;
    if (env.id !== undefined && this.#p.tracksAsks?.(slot.def)) {
      const recent = slot.recent ?? [];
      recent.push([env.id, failure === undefined, failure === undefined ? result : toWireError(failure)]);
      if (recent.length > RECENT_ASKS) recent.shift();
      slot.recent = recent;
    }
    const durable = this.#p.afterHandle?.(slot);
    if (durable) {
      return durable.then(
        () => this.#answer(slot, env, result, failure),
        (err: unknown) => env.done(err),
      );
    }
    this.#answer(slot, env, result, failure);
    return undefined;
  }

  #answer(slot: Slot, env: Envelope, result: unknown, failure: unknown): void {
    if (failure !== undefined) {
      env.done(failure);
      return;
    }
    this.stats.handled++;
    try {
      assertSerializable(result, `the result of ${slot.def.type}.${env.h}`, "result");
    } catch (err) {
      env.done(err);
      return;
    }
    env.done(undefined, result);
  }

  async #activate(slot: Slot): Promise<void> {
    if (this.#p.load) await this.#p.load(slot);
    const inst = new slot.def.cls();
    inst.key = slot.key;
    inst.state = slot.version === 0 && slot.state === undefined ? inst.initialState() : slot.state;
    slot.state = undefined;
    slot.instance = inst;
    this.#active.add(slot);
    this.stats.activations++;
    try {
      if (inst.onActivate) await inst.onActivate();
    } catch (err) {
      slot.state = inst.state;
      slot.instance = undefined;
      this.#active.delete(slot);
      throw err;
    }
    slot.lastUsed = this.#p.clock.now();
    this.#enforceCap();
  }

  /**
   * Keeps the instance's LRU position roughly current. Called on each message; re-inserts at
   * most once a second per entity, which is plenty for choosing whom to passivate.
   */
  touch(slot: Slot): void {
    if (slot.instance === undefined) return;
    const now = this.#p.clock.now();
    if (now - slot.touched < 1000) return;
    slot.touched = now;
    this.#active.delete(slot);
    this.#active.add(slot);
  }

  /** Activates an entity with no message (eager activation after a hand-off). */
  activate(slot: Slot): void {
    if (slot.instance !== undefined || slot.running) return;
    slot.activateOnly = true;
    slot.running = true;
    this.#schedule(slot);
  }

  /** Resolves once the slot's mailbox is empty and no handler runs. */
  whenIdle(slot: Slot): Promise<void> {
    if (!slot.running && !slot.queue) return Promise.resolve();
    return new Promise((resolve) => {
      if (slot.idle === undefined) slot.idle = [];
      slot.idle.push(resolve);
    });
  }

  /** Runs onPassivate and drops the instance, keeping state and version in the slot. */
  async passivate(slot: Slot): Promise<void> {
    const inst = slot.instance;
    if (inst === undefined) return;
    this.#active.delete(slot);
    try {
      if (inst.onPassivate) await inst.onPassivate();
    } catch (err) {
      this.#p.logger.warn(
        `node ${this.#p.nodeId}: onPassivate of ${slot.def.type}/${slot.key} threw: ${String(err)}`,
      );
    }
    slot.state = inst.state;
    slot.instance = undefined;
    this.stats.passivations++;
  }

  #enforceCap(): void {
    if (this.#active.size <= this.#p.maxActive) return;
    for (const s of this.#active) {
      if (this.#active.size <= this.#p.maxActive) break;
      if (s.running || s.queue) continue;
      // Claim the slot so no message starts on it while onPassivate runs.
      s.running = true;
      void this.passivate(s).finally(() => this.#release(s));
    }
  }

  // Ends a passivation claim; messages that arrived meanwhile reactivate the entity.
  #release(slot: Slot): void {
    slot.running = false;
    if (slot.queue && slot.queue.length > 0) {
      slot.running = true;
      this.#schedule(slot);
    } else {
      slot.queue = undefined;
      if (slot.idle) {
        const w = slot.idle;
        slot.idle = undefined;
        for (const f of w) f();
      }
      // With a durable store the state is safe there: forget the dormant entity entirely, so
      // memory follows the active entities rather than every key this node ever served.
      if (this.#p.forgetDormant && slot.instance === undefined) this.drop(slot);
    }
  }

  #armSweep(): void {
    const every = Math.max(50, Math.min(30_000, Math.floor(this.#p.idleMs / 2)));
    this.#sweepTimer = this.#p.clock.setTimeout(() => {
      this.sweepIdle();
      this.#armSweep();
    }, every);
  }

  /** Passivates entities idle longer than idleMs. */
  sweepIdle(): void {
    const cutoff = this.#p.clock.now() - this.#p.idleMs;
    for (const s of this.#active) {
      if (s.lastUsed > cutoff) continue;
      if (s.running || s.queue) continue;
      s.running = true;
      void this.passivate(s).finally(() => this.#release(s));
    }
  }

  /** Slots of a partition (a snapshot). */
  slotsOf(partition: number): Slot[] {
    return [...(this.#byPartition.get(partition) ?? [])];
  }

  /** The record that hands this slot over (instance or dormant state). */
  record(slot: Slot): EntityRecord {
    return {
      t: slot.def.type,
      key: slot.key,
      s: slot.instance ? slot.instance.state : slot.state,
      ver: slot.version,
      act: slot.instance !== undefined,
      ...(slot.recent ? { ids: slot.recent } : {}),
    };
  }

  /** Forgets a slot entirely (after its state was handed over). */
  drop(slot: Slot): void {
    const byKey = this.#slots.get(slot.def.type);
    if (byKey?.get(slot.key) !== slot) return;
    byKey.delete(slot.key);
    this.#slotCount--;
    this.#active.delete(slot);
    const set = this.#byPartition.get(slot.partition);
    set?.delete(slot);
    if (set && set.size === 0) this.#byPartition.delete(slot.partition);
  }

  /**
   * Installs a handed-over record unless this node already holds the same or a newer version
   * of that entity: versions make duplicate and late hand-offs harmless. Returns the slot
   * when the record was installed.
   */
  install(def: EntityDefinition, rec: EntityRecord, partition: number): Slot | undefined {
    const slot = this.slot(def, rec.key, partition);
    if (rec.ver <= slot.version) return undefined;
    if (slot.instance) slot.instance.state = rec.s;
    else slot.state = rec.s;
    slot.version = rec.ver;
    if (rec.ids) slot.recent = [...rec.ids];
    return slot;
  }

  #givenUp: unknown;

  /**
   * Drops an entity's instance and state without passivating it (another node owns it now,
   * as its durable write just showed); messages still queued fail with `reason`.
   */
  giveUp(slot: Slot, reason: unknown): void {
    this.#givenUp = reason;
    // Queued messages go back to routing too (the caller maps this error to "moved").
    for (const e of (slot.queue ?? []).splice(0)) e.done(reason);
    this.#active.delete(slot);
    slot.instance = undefined;
    slot.state = undefined;
    slot.version = 0;
    slot.revision = undefined;
    slot.recent = undefined;
  }

  /** Stops the idle sweep. */
  close(): void {
    this.#p.clock.clearTimeout(this.#sweepTimer);
  }
}

/** What a caller sees when a handler throws: the same HandlerError, local or remote. */
function asHandlerError(err: unknown): ActorError {
  if (err instanceof ActorError) return err;
  if (err instanceof Error) {
    const e = new HandlerError(err.message, err.name);
    Object.defineProperty(e, "cause", { value: err, enumerable: false });
    return e;
  }
  return new HandlerError(`Handler threw a non-error: ${String(err).slice(0, 200)}`, "Error", err);
}
