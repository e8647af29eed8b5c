// Entity lifecycle on one node: activation (load, construct, onActivate), passivation
// (onPassivate, keep or forget the state), the idle sweep and the cap on live instances (LRU).
import type { Clock, Logger } from "@keyhold/core";
import type { Background } from "./background.js";
import type { Entity } from "./entity.js";
import type { HostStats } from "./handler.js";
import type { Mailbox } from "./mailbox.js";
import type { Slot, SlotTable } from "./slots.js";

export interface LifecycleParams {
  readonly maxActive: number;
  readonly idleMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly nodeId: string;
  readonly stats: HostStats;
  readonly slots: SlotTable;
  /** Loads durable state into the slot before activation (a store is configured). */
  readonly load: ((slot: Slot) => Promise<void>) | undefined;
  /** Drop a passivated (idle or over the cap) entity from memory: a store holds its state. */
  readonly forgetDormant: boolean;
  /** Gives a new instance its reminders (reminders.ts), before onActivate runs. */
  readonly bind?: ((inst: Entity<unknown>, slot: Slot) => void) | undefined;
  /** Where the idle sweep runs, as maintenance (background.ts); inline without one. */
  readonly background?: Background | undefined;
}

export class Lifecycle {
  readonly #p: LifecycleParams;
  // Insertion-ordered: the first entry is the least recently used live instance.
  readonly #active = new Set<Slot>();
  #mailbox: Mailbox | undefined;
  #sweepTimer: unknown;

  constructor(params: LifecycleParams) {
    this.#p = params;
  }

  /** Connects the mailbox (built after this, since it activates through it) and starts the sweep. */
  attach(mailbox: Mailbox): void {
    this.#mailbox = mailbox;
    if (this.#p.idleMs > 0) this.#armSweep();
  }

  get activeCount(): number {
    return this.#active.size;
  }

  /** Loads, constructs and runs onActivate; called by the mailbox before a slot's first message. */
  async activate(slot: Slot): Promise<void> {
    if (this.#p.load) await this.#p.load(slot);
    const inst = new slot.def.cls();
    inst.key = slot.key;
    inst.state = slot.version === 0 && slot.state === undefined ? inst.initialState() : slot.state;
    slot.state = undefined;
    slot.instance = inst;
    this.#p.bind?.(inst, slot);
    this.#active.add(slot);
    this.#p.stats.activations++;
    try {
      if (inst.onActivate) await inst.onActivate();
    } catch (err) {
      slot.state = inst.state;
      slot.instance = undefined;
      this.#active.delete(slot);
      throw err;
    }
    slot.lastUsed = this.#p.clock.monoNow();
    this.#enforceCap();
  }

  /**
   * Keeps the instance's LRU position roughly current. Called on each message; re-inserts at
   * most once a second per entity, which is plenty for choosing whom to passivate. `now` is the
   * monotonic reading that admitted the message (dispatch.ts), taken in the same turn.
   */
  touch(slot: Slot, now: number): void {
    if (slot.instance === undefined) return;
    if (now - slot.touched < 1000) return;
    slot.touched = now;
    this.#active.delete(slot);
    this.#active.add(slot);
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
    this.#p.stats.passivations++;
  }

  /** Drops the instance without passivating it (durability.ts gives an entity up). */
  discard(slot: Slot): void {
    this.#active.delete(slot);
    slot.instance = undefined;
  }

  /** Forgets a slot entirely (after its state was handed over). */
  drop(slot: Slot): void {
    this.#active.delete(slot);
    this.#p.slots.drop(slot);
  }

  #enforceCap(): void {
    if (this.#active.size <= this.#p.maxActive) return;
    for (const s of this.#active) {
      if (this.#active.size <= this.#p.maxActive) break;
      this.#passivateIdle(s);
    }
  }

  /** Passivates a slot nothing runs or waits on, holding it so no message starts meanwhile. */
  #passivateIdle(slot: Slot): void {
    const mailbox = this.#mailbox!;
    if (!mailbox.isIdle(slot)) return;
    slot.passivating = true;
    void this.passivate(slot).finally(() => {
      // With a durable store the state is safe there: forget the dormant entity entirely, so
      // memory follows the active entities rather than every key this node ever served.
      if (mailbox.passivated(slot) && this.#p.forgetDormant && slot.instance === undefined && !slot.reminders)
        this.drop(slot);
    });
  }

  #armSweep(): void {
    const every = Math.max(50, Math.min(30_000, Math.floor(this.#p.idleMs / 2)));
    this.#sweepTimer = this.#p.clock.setTimeout(() => {
      if (this.#p.background) this.#p.background.spawn("maintenance", () => this.sweepIdle());
      else this.sweepIdle();
      this.#armSweep();
    }, every);
  }

  /** Passivates entities idle longer than idleMs. */
  sweepIdle(): void {
    // Idle time is monotonic (as lastUsed and touched are): a wall-clock step passivates nothing.
    const cutoff = this.#p.clock.monoNow() - this.#p.idleMs;
    for (const s of this.#active) if (s.lastUsed <= cutoff) this.#passivateIdle(s);
  }

  /** Stops the idle sweep. */
  close(): void {
    this.#p.clock.clearTimeout(this.#sweepTimer);
  }
}

/**
 * The pruning rule for replica copies when a store holds the state: a copy that no write or
 * refill refreshed for 2 × idleMs belongs to an entity its primary passivated and forgot (it
 * does so after idleMs without a message, and every handled message refreshes the copies),
 * whose state the store holds. Keeping it would keep every key ever replicated in memory.
 */
export function dormantCopyExpired(copiedAt: number, now: number, idleMs: number): boolean {
  return idleMs > 0 && now - copiedAt > 2 * idleMs;
}
