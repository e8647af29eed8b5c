// The registry of the entity keys this node knows: one slot per key holding its state and
// version (and its live instance while active), indexed by partition for hand-offs; plus
// turning a slot into the record that moves between nodes, and installing one.
import type { Entity, EntityDefinition } from "./entity.js";
import type { Envelope } from "./mailbox.js";
import type { Reads } from "./read-only.js";
import { type Reminder, type WireReminder, wireReminders } from "./reminders.js";
import type { EntityRecord, RecentAsk } from "./wire.js";

/** Everything this node knows of one entity key. */
export interface Slot {
  readonly def: EntityDefinition;
  readonly key: string;
  readonly partition: number;
  /** The state while no instance is live (the instance holds it otherwise). */
  state: unknown;
  version: number;
  /** The acquisition stamp of the tenure that wrote `version` (0: never written). */
  acq: number;
  /** The durable store's revision of this entity, when a store is configured. */
  revision: number | undefined;
  /** Recently applied asks of a replicated or stored entity (see RecentAsk). */
  recent: RecentAsk[] | undefined;
  /** Pending reminders by name (reminders.ts); undefined when none. */
  reminders: Map<string, Reminder> | undefined;
  instance: Entity<unknown> | undefined;
  queue: Envelope[] | undefined;
  /** The mailbox pump holds the slot: a message (or an eager activation) is under way. */
  draining: boolean;
  /** onPassivate runs: no message may start until it is done. */
  passivating: boolean;
  lastUsed: number;
  /** When the slot last moved to the young end of the LRU order. */
  touched: number;
  /** Waiters for the mailbox to go idle (hand-off drains). */
  idle: (() => void)[] | undefined;
  /** Set for an eager activation with no message. */
  activateOnly: boolean;
  /**
   * Given up by a hand-off that timed out while a handler ran: nothing more runs here, and
   * whatever reaches the slot fails with SlotMoved (the sender routes it again).
   */
  dead: boolean;
  /**
   * The state may hold writes not known durable in this tenure: it was installed from a
   * hand-off or a replica copy, or kept after a refused write (durability.ts). With group
   * commit the next answer, even one that changes nothing, waits for a write of it (commit.ts).
   */
  unconfirmed: boolean;
  /** The reading phase of its read-only handlers (read-only.ts), from its first read on. */
  reads: Reads | undefined;
}

/** What the reminder heap must hear of (reminders.ts): records installed, slots dropped. */
export interface SlotHooks {
  adopt(slot: Slot, rem: readonly WireReminder[] | undefined): void;
  forget(slot: Slot): void;
}

export class SlotTable {
  // Per entity type, per key: no id string built per message.
  readonly #slots = new Map<string, Map<string, Slot>>();
  #count = 0;
  readonly #byPartition = new Map<number, Set<Slot>>();
  readonly #hooks: SlotHooks | undefined;

  constructor(hooks?: SlotHooks) {
    this.#hooks = hooks;
  }

  get count(): number {
    return this.#count;
  }

  /** Per entity type, [live instances, known keys]; and messages queued in all mailboxes. */
  census(): { types: [string, number, number][]; queued: number } {
    let queued = 0;
    const types: [string, number, number][] = [];
    for (const [type, byKey] of this.#slots) {
      let active = 0;
      for (const s of byKey.values()) {
        queued += s.queue?.length ?? 0;
        if (s.instance !== undefined) active++;
      }
      types.push([type, active, byKey.size]);
    }
    return { types, queued };
  }

  /** The slot of an entity when this node knows it (its `partition` is the key's). */
  find(def: EntityDefinition, key: string): Slot | undefined {
    return this.#slots.get(def.type)?.get(key);
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
        acq: 0,
        revision: undefined,
        recent: undefined,
        reminders: undefined,
        instance: undefined,
        queue: undefined,
        draining: false,
        passivating: false,
        lastUsed: 0,
        touched: Number.NEGATIVE_INFINITY,
        idle: undefined,
        activateOnly: false,
        dead: false,
        unconfirmed: false,
        reads: undefined,
      };
      byKey.set(key, s);
      this.#count++;
      let set = this.#byPartition.get(partition);
      if (!set) {
        set = new Set();
        this.#byPartition.set(partition, set);
      }
      set.add(s);
    }
    return s;
  }

  /** Slots of a partition (a snapshot). */
  slotsOf(partition: number): Slot[] {
    return [...(this.#byPartition.get(partition) ?? [])];
  }

  /** Forgets a slot entirely (its state was handed over, or a store holds it). */
  drop(slot: Slot): void {
    const byKey = this.#slots.get(slot.def.type);
    if (byKey?.get(slot.key) !== slot) return;
    byKey.delete(slot.key);
    this.#count--;
    this.#hooks?.forget(slot);
    const set = this.#byPartition.get(slot.partition);
    set?.delete(slot);
    if (set && set.size === 0) this.#byPartition.delete(slot.partition);
  }

  /**
   * The record that hands this slot over (instance or dormant state); `live` marks it active
   * (by default: whether an instance runs; a replica copy of a write always is).
   */
  record(slot: Slot, live = slot.instance !== undefined): EntityRecord {
    const rem = wireReminders(slot);
    const rec: { -readonly [K in keyof EntityRecord]: EntityRecord[K] } = {
      t: slot.def.type,
      key: slot.key,
      s: slot.instance ? slot.instance.state : slot.state,
      ver: slot.version,
      act: live,
    };
    if (slot.acq > 0) rec.acq = slot.acq;
    if (slot.recent) rec.recent = slot.recent;
    if (rem) rec.rem = rem;
    return rec;
  }

  /** Restarts the entity of `dropped` under `acq` unless a newer record is held (restartRecord). */
  restart(def: EntityDefinition, dropped: EntityRecord, partition: number, acq: number): Slot | undefined {
    const slot = this.slot(def, dropped.key, partition);
    if (!isNewer(dropped, { acq: slot.acq, ver: slot.version })) return undefined;
    return this.install(def, restartRecord(dropped, acq), partition);
  }

  /**
   * Installs a handed-over record unless this node already holds the same or a newer one of
   * that entity (by acquisition stamp, then version: see `isNewer`), which makes duplicate
   * and late hand-offs harmless. Returns the slot when the record was installed.
   */
  install(def: EntityDefinition, rec: EntityRecord, partition: number): Slot | undefined {
    const slot = this.slot(def, rec.key, partition);
    if (!isNewer(rec, { acq: slot.acq, ver: slot.version })) return undefined;
    // Version 0 is a restart (see `restart`): no state, initialState() at activation.
    const s = rec.ver === 0 ? undefined : rec.s;
    if (slot.instance) slot.instance.state = s;
    else slot.state = s;
    slot.version = rec.ver;
    slot.acq = rec.acq ?? 0;
    // Whoever sent it cannot vouch that its newest version reached a quorum (a refused write's
    // state travels too): answers wait for this tenure's first write of it.
    slot.unconfirmed = rec.ver > 0;
    if (rec.recent) slot.recent = [...rec.recent];
    this.#hooks?.adopt(slot, rec.rem);
    return slot;
  }
}

/**
 * A record of this entity, `dropped`, may not be served (its node cannot tell whether it is
 * older than what an unreachable member acknowledged): unless this node holds a newer one, the
 * entity restarts from initialState() under `acq`, the epoch of the tenure starting now. The
 * restart is a record like any other (version 0, no state), so it travels with the partition
 * and beats every record of an older tenure, `dropped` included, wherever one still waits.
 */
export function restartRecord(dropped: EntityRecord, acq: number): EntityRecord {
  return { t: dropped.t, key: dropped.key, s: undefined, ver: 0, acq, act: false };
}

/**
 * The order of two records of one entity: the one written under the later acquisition of its
 * partition wins, whatever the versions say (an interim owner that restarted the entity from
 * initialState() counts from 0 again); within one acquisition, the higher version wins.
 */
export function isNewer(
  a: { readonly acq?: number | undefined; readonly ver: number },
  b: { readonly acq?: number | undefined; readonly ver: number },
): boolean {
  const qa = a.acq ?? 0;
  const qb = b.acq ?? 0;
  return qa !== qb ? qa > qb : a.ver > b.ver;
}

/** Two records of one entity written in one acquisition of its partition (acq > 0). */
export function sameTenure(
  a: { readonly acq?: number | undefined },
  b: { readonly acq?: number | undefined },
): boolean {
  return (a.acq ?? 0) > 0 && a.acq === b.acq;
}
