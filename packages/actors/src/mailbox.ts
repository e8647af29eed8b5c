// The per-entity mailbox: a bounded queue per slot, the pump that drains it one message at a
// time, and the node-wide concurrency limit on how many entities drain at once. What running a
// message means (handler, durable write, answer) is the HandlerRunner's business.
import type { Logger } from "@keyhold/core";
import type { Entity } from "./entity.js";
import { MailboxFullError, UnknownHandlerError } from "./errors.js";
import { asHandlerError, type HostStats, isReadOnly } from "./handler.js";
import { Reads } from "./read-only.js";
import type { Slot } from "./slots.js";

/**
 * What a message gets when its slot was given up by a hand-off (dead): it did not run, and the
 * dispatcher answers it with "moved", so its sender routes it again to the new owner.
 */
export class SlotMoved extends Error {
  constructor(type: string, key: string) {
    super(`${type}/${key} moved to another node while this message waited`);
    this.name = "SlotMoved";
  }
}

/** One message for an entity; `done` is called exactly once with the outcome. */
export interface Envelope {
  /** The ask's message id, for asks that arrived over the wire (retries carry the same id). */
  readonly id?: string | undefined;
  readonly h: string;
  readonly a: readonly unknown[];
  readonly done: (err: unknown, result?: unknown) => void;
  /** Runs instead of handler `h`: an internal message of this node (a due reminder, reminders.ts). */
  readonly run?: ((instance: Entity<unknown>) => unknown) | undefined;
  /** The caller's trace context, kept while the message waits in the queue (telemetry on). */
  ctx?: unknown;
}

export interface MailboxParams {
  readonly mailboxSize: number;
  readonly concurrency: number;
  readonly logger: Logger;
  readonly nodeId: string;
  readonly stats: HostStats;
  /** Brings the slot's instance to life (lifecycle.ts). */
  readonly activate: (slot: Slot) => Promise<void>;
  /** Runs one message; a promise when it must be waited for (handler.ts). */
  readonly run: (slot: Slot, env: Envelope) => Promise<void> | undefined;
  /** Forgets a slot that holds nothing (lifecycle.ts): no state ever written, no instance. */
  readonly forget: (slot: Slot) => void;
  /**
   * With telemetry on: reads the current trace context, and runs a function in one. A message
   * that waits in the queue keeps its caller's context, so its activation span and the asks
   * its handler makes belong to its own trace, not to the message that happened to pump it.
   */
  readonly context?: MessageContext | undefined;
}

/** Captures the current trace context and runs a function in a captured one (telemetry.ts). */
export interface MessageContext {
  capture(): unknown;
  within<R>(ctx: unknown, fn: () => R): R;
}

export class Mailbox {
  readonly #p: MailboxParams;
  // Entities draining now, and those waiting their turn. A counter and a FIFO rather than
  // p-queue: p-queue's per-task bookkeeping (ids, events, microtasks) cost two thirds of a
  // local ask, and draining is already one task per entity.
  #running = 0;
  readonly #waiting: Slot[] = [];
  #waitingHead = 0;
  #starting = false;

  constructor(params: MailboxParams) {
    this.#p = params;
  }

  /**
   * Queues a message; fails it at once with MailboxFullError when the mailbox is full. When the
   * entity is idle and the node under its concurrency limit, the message runs right away, and a
   * synchronous handler completes before enqueue() returns.
   */
  enqueue(slot: Slot, env: Envelope): void {
    if (env.run === undefined && !slot.def.handlers.has(env.h)) {
      env.done(new UnknownHandlerError(slot.def.type, env.h));
      this.#forgetIfEmpty(slot);
      return;
    }
    if (slot.dead) {
      env.done(new SlotMoved(slot.def.type, slot.key));
      return;
    }
    if (
      readersRun(slot) &&
      (slot.queue?.length ?? 0) === 0 &&
      !slot.dead &&
      slot.instance &&
      isReadOnly(slot, env)
    ) {
      // Readers are running and no writer waits: this reader joins them now.
      const wait = this.#p.run(slot, env);
      if (wait !== undefined) this.#joinReaders(slot, wait);
      return;
    }
    const free = !slot.draining && !slot.passivating;
    if (free && slot.queue === undefined && this.#running < this.#p.concurrency) {
      slot.draining = true;
      this.#running++;
      this.#pump(slot, env);
      return;
    }
    if (slot.queue === undefined) slot.queue = [];
    const q = slot.queue;
    if (q.length >= this.#p.mailboxSize) {
      this.#p.stats.mailboxFull++;
      env.done(new MailboxFullError(slot.def.type, slot.key, this.#p.mailboxSize));
      return;
    }
    if (this.#p.context) env.ctx = this.#p.context.capture();
    q.push(env);
    if (free) this.#start(slot);
  }

  /** Takes the slot and drains it now if under the concurrency limit, else when a turn frees up. */
  #start(slot: Slot): void {
    slot.draining = true;
    if (this.#running < this.#p.concurrency) {
      this.#running++;
      this.#pump(slot, undefined);
    } else this.#waiting.push(slot);
  }

  /** Activates an entity with no message (eager activation after a hand-off). */
  wake(slot: Slot): void {
    if (slot.instance !== undefined || slot.draining || slot.passivating || slot.dead) return;
    slot.activateOnly = true;
    this.#start(slot);
  }

  /** True when nothing runs or waits on the slot: it may be passivated. */
  isIdle(slot: Slot): boolean {
    return !slot.draining && !slot.passivating && slot.queue === undefined;
  }

  /** Resolves once the slot's mailbox is empty and no handler or passivation runs. */
  whenIdle(slot: Slot): Promise<void> {
    if (!slot.draining && !slot.passivating && !slot.queue) return Promise.resolve();
    return new Promise((resolve) => {
      if (slot.idle === undefined) slot.idle = [];
      slot.idle.push(resolve);
    });
  }

  /**
   * A passivation of the slot ended: messages that arrived meanwhile reactivate the entity.
   * True when the slot is idle afterwards.
   */
  passivated(slot: Slot): boolean {
    slot.passivating = false;
    if (slot.queue && slot.queue.length > 0 && !slot.dead) {
      this.#start(slot);
      return false;
    }
    slot.queue = undefined;
    this.#wakeIdleWaiters(slot);
    return true;
  }

  /** Fails every queued message of the slot with `reason`. */
  failQueued(slot: Slot, reason: unknown): void {
    for (const e of (slot.queue ?? []).splice(0)) e.done(reason);
  }

  /**
   * Gives the slot up (a hand-off timed out while its handler ran): queued messages fail with
   * SlotMoved now, and nothing more runs or activates here. A running handler finishes; the
   * slot goes idle when it has.
   */
  kill(slot: Slot): void {
    slot.dead = true;
    slot.activateOnly = false;
    this.failQueued(slot, new SlotMoved(slot.def.type, slot.key));
  }

  /**
   * A slot created for a message that never ran (unknown handler, failed activation) and that
   * holds no state: drop it, or every such message would leave one behind for good.
   */
  #forgetIfEmpty(slot: Slot): void {
    if (slot.version === 0 && slot.instance === undefined && this.isIdle(slot) && !slot.idle)
      this.#p.forget(slot);
  }

  #wakeIdleWaiters(slot: Slot): void {
    if (!slot.idle) return;
    const waiters = slot.idle;
    slot.idle = undefined;
    for (const w of waiters) w();
  }

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
   * continues when that settles. Called holding the slot (`draining`) and a concurrency turn;
   * gives both back when the mailbox is empty.
   */
  #pump(slot: Slot, first: Envelope | undefined): void {
    let env = first;
    for (;;) {
      if (readersRun(slot) && slot.dead) {
        slot.reads!.parked = true; // the last reader to end resumes the pump
        return;
      }
      if (slot.dead) {
        // Given up while a handler ran: what waits goes to the new owner, nothing runs here.
        env?.done(new SlotMoved(slot.def.type, slot.key));
        this.failQueued(slot, new SlotMoved(slot.def.type, slot.key));
        this.#idle(slot);
        return;
      }
      if (
        slot.instance === undefined &&
        (env !== undefined || (slot.queue?.length ?? 0) > 0 || slot.activateOnly)
      ) {
        slot.activateOnly = false;
        const pending = env;
        const ctx = (env ?? slot.queue?.[0])?.ctx;
        const activation =
          ctx === undefined
            ? this.#p.activate(slot)
            : this.#p.context!.within(ctx, () => this.#p.activate(slot));
        activation.then(
          () => this.#pump(slot, pending),
          (err: unknown) => {
            // Activation failed: fail what is queued; the next message tries again. A
            // throwing onActivate reaches local and remote callers alike as a HandlerError.
            const failure = asHandlerError(err);
            pending?.done(failure);
            this.failQueued(slot, failure);
            this.#p.logger.warn(
              `node ${this.#p.nodeId}: activating ${slot.def.type}/${slot.key} failed: ${String(err)}`,
            );
            this.#idle(slot);
            this.#forgetIfEmpty(slot);
          },
        );
        return;
      }
      if (env === undefined) env = slot.queue?.shift();
      if (env === undefined) {
        this.#idle(slot);
        return;
      }
      const reading = isReadOnly(slot, env);
      const msg = env;
      const wait =
        msg.ctx === undefined
          ? this.#p.run(slot, msg)
          : this.#p.context!.within(msg.ctx, () => this.#p.run(slot, msg));
      env = undefined;
      if (wait !== undefined && !reading) {
        wait.then(() => this.#pump(slot, undefined));
        return;
      }
      if (wait !== undefined) this.#joinReaders(slot, wait);
      if (readersRun(slot)) {
        // Read-only handlers are running: the readers next in the queue join them; the next
        // writer (or the end of the queue) waits until the last of them ends.
        const next = slot.queue?.[0];
        if (next !== undefined && !slot.dead && isReadOnly(slot, next)) continue;
        slot.reads!.parked = true;
        return;
      }
    }
  }

  /** Counts a running read-only handler; when the last one ends, a parked pump goes on. */
  #joinReaders(slot: Slot, wait: Promise<void>): void {
    let r = slot.reads;
    if (r === undefined) {
      r = new Reads(slot.def.type);
      slot.reads = r;
    }
    r.waiting++;
    const p = r;
    wait.then(() => {
      if (--p.waiting > 0) return;
      if (!p.parked) return;
      p.parked = false;
      this.#pump(slot, undefined);
    });
  }

  /** The mailbox is empty: let go of the slot and the turn, wake whoever waits for idleness. */
  #idle(slot: Slot): void {
    slot.draining = false;
    if (slot.queue !== undefined && slot.queue.length === 0) slot.queue = undefined;
    if (slot.queue !== undefined && !slot.dead) {
      // Messages arrived while activation failed: try again.
      slot.draining = true;
      this.#pump(slot, undefined);
      return;
    }
    this.#wakeIdleWaiters(slot);
    this.#endTurn();
  }
}

/** Read-only handlers the mailbox waits for run on the slot now (see #joinReaders). */
function readersRun(slot: Slot): boolean {
  return slot.reads !== undefined && slot.reads.waiting > 0;
}
