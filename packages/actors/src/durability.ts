// The store policy and the replica write of a handled message: state is loaded from the store
// before activation, and every handled message is written to the store (at the revision this
// node last saw) and copied to the replica quorum before its caller hears of it. A refused
// store write, or a replica answering `stale`, means another node owns the entity: it is given
// up here. Both effects are acts as owner: each checks the lease right before it (dispatch.ts).

import { NotOwnerError, StoreConflictError } from "./errors.js";
import type { Lifecycle } from "./lifecycle.js";
import type { Mailbox } from "./mailbox.js";
import type { ReminderIndex } from "./reminder-index.js";
import { wireReminders } from "./reminders.js";
import type { Replicator } from "./replication.js";
import { assertSerializable } from "./serializable.js";
import type { Slot, SlotHooks, SlotTable } from "./slots.js";
import type { StateStore } from "./store.js";

export interface DurabilityParams {
  readonly store: StateStore | undefined;
  /** writeWith when it has it (one promise per write), else write. */
  readonly replicator: (Pick<Replicator, "write"> & Partial<Pick<Replicator, "writeWith">>) | undefined;
  readonly slots: SlotTable;
  readonly lifecycle: Lifecycle;
  /** Late-bound: the mailbox is built after the runner that calls persist. */
  readonly mailbox: () => Mailbox;
  /** The node's reminder heap: stored reminders are adopted on load, dropped on give-up. */
  readonly reminders?: SlotHooks | undefined;
  /** The store's per-partition list of entities with reminders, when the store keeps one. */
  readonly index?: ReminderIndex | undefined;
  /** The lease check before an effect as owner; throws NotOwnerError (dispatch.ts leaseHeld). */
  readonly leaseHeld: (slot: Slot) => void;
}

const noop = (): void => {};

export class Durability {
  readonly #p: DurabilityParams;

  constructor(params: DurabilityParams) {
    this.#p = params;
  }

  /** Whether handled messages need a durable write at all (a store, or a replicated type). */
  get needed(): boolean {
    return this.#p.store !== undefined || this.#p.replicator !== undefined;
  }

  /** Loads the stored state of an entity before it activates (a store is configured). */
  async load(slot: Slot): Promise<void> {
    const stored = await this.#p.store!.load(slot.def.type, slot.key);
    // The store is the authority: it holds every acknowledged write. A local copy (from a
    // hand-off or a replica) with a higher version can only hold writes whose store write
    // failed, which were never acknowledged, so the stored state wins.
    if (stored) {
      slot.state = stored.state;
      slot.version = stored.version;
      slot.recent = stored.recent ? [...stored.recent] : undefined;
      slot.acq = stored.acq ?? 0;
      this.#p.reminders?.adopt(slot, stored.rem);
      slot.unconfirmed = false; // the store holds it
    }
    slot.revision = stored?.revision;
  }

  /**
   * Makes a handled message durable before its caller hears of it: written to the store and
   * copied to the replica quorum. Undefined when the entity type needs neither.
   */
  persist(slot: Slot): Promise<void> | undefined {
    const store = this.#p.store;
    const replicator = slot.def.replicas > 1 ? this.#p.replicator : undefined;
    if (!store && !replicator) return undefined;
    const state = slot.instance ? slot.instance.state : slot.state;
    try {
      assertSerializable(state, `the state of ${slot.def.type}/${slot.key}`, "state");
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      this.#p.leaseHeld(slot);
    } catch (err) {
      return Promise.reject(err);
    }
    const stored = store ? this.#writeStore(store, slot, state) : undefined;
    const copied = replicator ? this.#writeCopies(replicator, slot) : undefined;
    // One write alone is waited for as it is: no Promise.all around it.
    if (stored && copied) return Promise.all([stored, copied]).then(noop);
    return stored ?? copied;
  }

  /** The copy to the replica quorum; a `stale` refusal gives the entity up. */
  #writeCopies(replicator: DurabilityParams["replicator"] & object, slot: Slot): Promise<void> {
    // record() reads the state the write started with (the instance's), as live.
    const rec = this.#p.slots.record(slot, true);
    const yieldOn = (err: unknown) => {
      if (err instanceof NotOwnerError) this.#yield(slot, err);
    };
    if (!replicator.writeWith)
      return replicator.write(rec, slot.partition).catch((err: unknown) => {
        yieldOn(err);
        throw err;
      });
    // One promise per write (the replicator answers by callback), not write()'s and a catch's.
    return new Promise<void>((resolve, reject) =>
      replicator.writeWith!(rec, slot.partition, (err) => {
        if (err === undefined) return resolve();
        yieldOn(err);
        reject(err);
      }),
    );
  }

  /** The store write, conditional on the revision this node last saw. */
  #writeStore(store: StateStore, slot: Slot, state: unknown): Promise<void> {
    return store
      .save(
        slot.def.type,
        slot.key,
        { state, version: slot.version, recent: slot.recent, rem: wireReminders(slot), acq: slot.acq },
        slot.revision,
      )
      .then(
        (rev) => {
          slot.revision = rev;
          return this.#p.index?.update(slot);
        },
        (err: unknown) => {
          // Someone else wrote since we loaded: they own it. Give it up; routing retries.
          if (err instanceof StoreConflictError) this.#giveUp(slot, err);
          throw err;
        },
      );
  }

  /**
   * A replica refused our copy as stale: another node is primary in its view, or holds a newer
   * version. Stops acting for the entity: the instance goes (no more of its messages run here;
   * queued ones fail with `reason`, which the dispatcher turns into "moved" so routers send them
   * again), but its state stays as a dormant record. Unlike a store, no authority holds the
   * acknowledged writes elsewhere for sure: if the replica's view was merely behind and this
   * node is the owner after all, the next message resumes from this state, not from scratch;
   * if not, the state is only a record with its version, which a hand-off never installs over
   * a newer one.
   */
  #yield(slot: Slot, reason: unknown): void {
    if (slot.instance) slot.state = slot.instance.state;
    // The state kept holds the refused write: nobody may hear of it before a write succeeds.
    slot.unconfirmed = true;
    this.#p.mailbox().failQueued(slot, reason);
    this.#p.lifecycle.discard(slot);
  }

  /**
   * Drops an entity's instance and state without passivating it (another node owns it now,
   * as its durable write just showed); messages still queued fail with `reason`, which the
   * dispatcher turns into "moved" so they are routed again.
   */
  #giveUp(slot: Slot, reason: unknown): void {
    this.#p.mailbox().failQueued(slot, reason);
    this.#p.lifecycle.discard(slot);
    slot.state = undefined;
    slot.version = 0;
    slot.revision = undefined;
    slot.recent = undefined;
    this.#p.reminders?.forget(slot);
  }
}
