// Durable entity state: the store interface, and an in-memory implementation for tests and
// single-process use. Writes are conditional on the revision the writer last saw, so a node
// that lost ownership without knowing it yet cannot overwrite the new owner's state.
import { entityId } from "./entity.js";
import { StoreConflictError, StoreError } from "./errors.js";
import type { WireReminder } from "./reminders.js";
import type { RecentAsk } from "./wire.js";

/** One stored entity state. */
export interface StoredState {
  readonly state: unknown;
  /** The entity version (handled messages) the state includes. */
  readonly version: number;
  /** The store's revision of this entry; pass it to the next save. */
  readonly revision: number;
  /** The last asks applied to it, so a retry after failover is not applied twice. */
  readonly recent?: readonly RecentAsk[] | undefined;
  /** Its pending reminders (reminders.ts). */
  readonly rem?: readonly WireReminder[] | undefined;
  /** The epoch (fencing token) of the tenure that wrote it; absent from older entries. */
  readonly acq?: number | undefined;
}

/** What is saved for one entity. */
export interface StateEntry {
  readonly state: unknown;
  readonly version: number;
  /** The writer's epoch (fencing token) for the entity's partition. */
  readonly acq?: number | undefined;
  readonly recent?: readonly RecentAsk[] | undefined;
  readonly rem?: readonly WireReminder[] | undefined;
}

/** Where entities' state lives between activations and across whole-cluster restarts. */
export interface StateStore {
  /** The stored state, or undefined when the entity was never saved. */
  load(type: string, key: string): Promise<StoredState | undefined>;
  /**
   * Saves `entry` if the entry's revision is still `expected` (undefined: the entry must not
   * exist). Resolves with the new revision; rejects with StoreConflictError when someone else
   * wrote meanwhile, StoreError when the store cannot be reached.
   */
  save(type: string, key: string, entry: StateEntry, expected: number | undefined): Promise<number>;
  close(): Promise<void>;
  /**
   * Optional, for reminders: the entities of partition `p` that hold reminders, with the
   * index's revision (reminder-index.ts). Without these two methods, a stored entity's reminders
   * are known to a new owner only once it loads the entity (docs/concepts/reminders.md).
   */
  loadReminderIndex?(p: number): Promise<StoredReminderIndex | undefined>;
  /** Saves partition `p`'s reminder index if its revision is still `expected`, like `save`. */
  saveReminderIndex?(
    p: number,
    entries: readonly ReminderIndexEntry[],
    expected: number | undefined,
  ): Promise<number>;
}

/** One entity in a partition's reminder index: [type, key]. */
export type ReminderIndexEntry = readonly [string, string];

/** A partition's reminder index as stored. */
export interface StoredReminderIndex {
  readonly entries: readonly ReminderIndexEntry[];
  readonly revision: number;
}

/** Opens a store once Sharding has its NATS connection (if any). */
export interface StoreFactory {
  readonly kind: string;
  open(ctx: {
    readonly connection: import("@nats-io/nats-core").NatsConnection | undefined;
  }): Promise<StateStore>;
}

interface Entry {
  state: unknown;
  version: number;
  revision: number;
  recent: readonly RecentAsk[] | undefined;
  rem: readonly WireReminder[] | undefined;
  acq: number | undefined;
}

/**
 * An in-memory store. Nodes in one process that share one `MemoryStore` see one store; it is
 * not durable and not shared across processes — for tests, examples and single-process use.
 */
export class MemoryStore implements StateStore {
  readonly #entries = new Map<string, Entry>();
  readonly #indexes = new Map<number, StoredReminderIndex>();
  #revision = 0;
  /** Fail every call with StoreError while true (fault injection in tests). */
  failing = false;

  async load(type: string, key: string): Promise<StoredState | undefined> {
    this.#check();
    const e = this.#entries.get(entityId(type, key));
    return e
      ? {
          state: structuredClone(e.state),
          version: e.version,
          revision: e.revision,
          recent: structuredClone(e.recent),
          rem: structuredClone(e.rem),
          acq: e.acq,
        }
      : undefined;
  }

  async save(type: string, key: string, entry: StateEntry, expected: number | undefined): Promise<number> {
    this.#check();
    const id = entityId(type, key);
    const cur = this.#entries.get(id);
    if ((cur?.revision ?? undefined) !== expected) throw new StoreConflictError(type, key);
    const revision = ++this.#revision;
    this.#entries.set(id, {
      state: structuredClone(entry.state),
      version: entry.version,
      revision,
      recent: structuredClone(entry.recent),
      rem: structuredClone(entry.rem),
      acq: entry.acq,
    });
    return revision;
  }

  async loadReminderIndex(p: number): Promise<StoredReminderIndex | undefined> {
    this.#check();
    const e = this.#indexes.get(p);
    return e ? { entries: structuredClone(e.entries), revision: e.revision } : undefined;
  }

  async saveReminderIndex(
    p: number,
    entries: readonly ReminderIndexEntry[],
    expected: number | undefined,
  ): Promise<number> {
    this.#check();
    if (this.#indexes.get(p)?.revision !== expected)
      throw new StoreConflictError("reminder index", String(p));
    const revision = ++this.#revision;
    this.#indexes.set(p, { entries: structuredClone(entries), revision });
    return revision;
  }

  /** Nothing to release; the store stays usable, since other nodes may share it. */
  async close(): Promise<void> {}

  /** Number of stored entities. */
  get size(): number {
    return this.#entries.size;
  }

  #check(): void {
    if (this.failing) throw new StoreError("memory store is failing (fault injection)");
  }
}

/** A store factory for one shared MemoryStore (pass the same instance to several nodes). */
export function memoryStore(
  store: MemoryStore = new MemoryStore(),
): StoreFactory & { readonly store: MemoryStore } {
  return { kind: "memory", store, open: async () => store };
}
