// With a store: which entities of each partition hold reminders, kept in the store next to their
// states, so that a node acquiring a partition after its owner crashed learns the due times of
// dormant entities it has never loaded. The index names entities only (type and key), not due
// times, so it changes when an entity gets its first reminder or loses its last one, not on every
// fire; the due times themselves are in each entity's stored record. Cost on acquire: one store
// read for the partition's index, then one per entity it lists (REMINDER_LOAD_CONCURRENCY at a
// time), before the partition serves. Writes are conditional on the index revision, like state.
import type { Logger } from "@keyhold/core";
import type { EntityDefinition } from "./entity.js";
import { entityId } from "./entity.js";
import { StoreConflictError, StoreError } from "./errors.js";
import type { Slot, SlotHooks, SlotTable } from "./slots.js";
import type { ReminderIndexEntry, StateStore } from "./store.js";

/** Stored entity loads in flight at once while a partition's reminders are recovered. */
export const REMINDER_LOAD_CONCURRENCY = 32;
/** Attempts of one index change that keeps meeting a concurrent writer. */
const CONFLICT_RETRIES = 5;

interface PartitionIndex {
  readonly ids: Map<string, ReminderIndexEntry>;
  revision: number | undefined;
}

export interface ReminderIndexParams {
  readonly store: StateStore;
  readonly defs: ReadonlyMap<string, EntityDefinition>;
  readonly slots: SlotTable;
  readonly reminders: SlotHooks;
  readonly logger: Logger;
  readonly nodeId: string;
}

export class ReminderIndex {
  readonly #p: ReminderIndexParams;
  readonly #parts = new Map<number, PartitionIndex>();
  readonly #chains = new Map<number, Promise<void>>();

  constructor(params: ReminderIndexParams) {
    this.#p = params;
  }

  /** Whether the store keeps an index at all (a custom store may not implement it). */
  static supported(store: StateStore | undefined): boolean {
    return store?.loadReminderIndex !== undefined && store.saveReminderIndex !== undefined;
  }

  /**
   * After a store write of `slot`: records in the index that the entity now holds reminders, or
   * no longer does. Undefined (nothing to wait for) when the index already says so.
   */
  update(slot: Slot): Promise<void> | undefined {
    const id = entityId(slot.def.type, slot.key);
    const has = slot.reminders !== undefined;
    const known = this.#parts.get(slot.partition);
    if (known && known.ids.has(id) === has) return undefined;
    return this.#chain(slot.partition, async () => {
      for (let attempt = 0; ; attempt++) {
        const idx = await this.#index(slot.partition);
        if (idx.ids.has(id) === has) return;
        const ids = new Map(idx.ids);
        if (has) ids.set(id, [slot.def.type, slot.key]);
        else ids.delete(id);
        try {
          idx.revision = await this.#p.store.saveReminderIndex!(
            slot.partition,
            [...ids.values()],
            idx.revision,
          );
          this.#parts.set(slot.partition, { ids, revision: idx.revision });
          return;
        } catch (err) {
          this.#parts.delete(slot.partition); // someone else wrote it: read it again
          if (!(err instanceof StoreConflictError)) throw err;
          // Not a conflict of the entity's own write (that was stored): never "moved", which
          // would route the message again and apply it twice.
          if (attempt >= CONFLICT_RETRIES)
            throw new StoreError(
              `reminder index of partition ${slot.partition}: ${CONFLICT_RETRIES + 1} conflicting writes`,
            );
        }
      }
    });
  }

  /**
   * On acquiring partition `p` (before it serves): loads the stored records of the entities the
   * index lists that this node does not hold yet, so their reminders fire here while dormant.
   */
  recover(p: number): Promise<void> {
    this.#parts.delete(p); // what we cached while we owned it before may be stale
    return this.#chain(p, async () => {
      let idx: PartitionIndex;
      try {
        idx = await this.#index(p);
      } catch (err) {
        this.#p.logger.warn(
          `node ${this.#p.nodeId}: reminder index of partition ${p} unreadable: ${String(err)}`,
        );
        return;
      }
      const held = new Set(this.#p.slots.slotsOf(p).map((s) => entityId(s.def.type, s.key)));
      const todo = [...idx.ids.values()].filter(([t, k]) => !held.has(entityId(t, k)) && this.#p.defs.has(t));
      for (let i = 0; i < todo.length; i += REMINDER_LOAD_CONCURRENCY) {
        await Promise.all(todo.slice(i, i + REMINDER_LOAD_CONCURRENCY).map(([t, k]) => this.#load(p, t, k)));
      }
    });
  }

  async #load(p: number, type: string, key: string): Promise<void> {
    try {
      const stored = await this.#p.store.load(type, key);
      if (!stored?.rem || stored.rem.length === 0) return;
      const slot = this.#p.slots.slot(this.#p.defs.get(type)!, key, p);
      if (slot.version >= stored.version && slot.reminders) return; // arrived meanwhile
      slot.state = stored.state;
      slot.version = stored.version;
      slot.revision = stored.revision;
      slot.recent = stored.recent ? [...stored.recent] : undefined;
      this.#p.reminders.adopt(slot, stored.rem);
    } catch (err) {
      this.#p.logger.warn(
        `node ${this.#p.nodeId}: cannot load ${type}/${key} for its reminders: ${String(err)}`,
      );
    }
  }

  async #index(p: number): Promise<PartitionIndex> {
    let idx = this.#parts.get(p);
    if (idx) return idx;
    const stored = await this.#p.store.loadReminderIndex!(p);
    const ids = new Map<string, ReminderIndexEntry>();
    for (const e of stored?.entries ?? []) ids.set(entityId(e[0], e[1]), e);
    idx = { ids, revision: stored?.revision };
    this.#parts.set(p, idx);
    return idx;
  }

  /** Runs index steps of one partition one after the other. */
  #chain(p: number, step: () => Promise<void>): Promise<void> {
    const run = (this.#chains.get(p) ?? Promise.resolve()).then(step);
    const tail = run.catch(() => {});
    this.#chains.set(p, tail);
    void tail.then(() => {
      if (this.#chains.get(p) === tail) this.#chains.delete(p);
    });
    return run;
  }
}
