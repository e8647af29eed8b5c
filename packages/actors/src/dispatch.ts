// The one place that decides "this node may act for this key now" and then hands the message
// to the entity's mailbox. Every act this node takes as an owner starts here: running a handler
// (and, through it, the store write and the replica copies in durability.ts, and the answer
// through `done`), handing a partition's records over and taking the new owner's ack. Local
// asks, asks and tells from other nodes, and the router's local hand-over all come through
// `dispatch` or `askHere`, so a check added to `#mayAct` holds for all of them.
//
// The check is a valid lease (ShardNode.leaseValidAt(), against a monotonic clock reading taken
// for each message as it arrives: after a pause it fails before any queued input is handled)
// and ring ownership. The same reading times the message, so the check reads no clock of its
// own: a local ask costs a few µs, and one more clock read was most of the check's cost. Acts
// that happen later than admission call `leaseHeld` again right before their effect: the
// handler run (a message may wait in the mailbox), the answer, the replica copy, the store
// write. Those re-check the lease only: a partition being released still drains its queue
// while the ring already names the next owner, who waits for our records.
//
// Both entries (`askHere`, `dispatch`) also pass the turn guard (turn-guard.ts) first: a flood
// of local asks, from this node's callers or through the router's local hand-over, settles
// through promises alone and would otherwise starve the heartbeat. One hook covers both.
import type { Deadline, Deadlines, ShardNode } from "@keyhold/core";
import { assertArgs } from "./ask-codec.js";
import {
  CallbackOutcome,
  Delivery,
  LocalAsk,
  type LocalOutcome,
  leaseHeld,
  movedError,
  type Outcome,
  sharedNow,
} from "./dispatch-messages.js";
import type { EntityDefinition } from "./entity.js";
import { MailboxFullError, NotOwnerError, UnknownEntityTypeError } from "./errors.js";
import type { Handoff } from "./handoff.js";
import { LatencyHistogram } from "./latency.js";
import type { Lifecycle } from "./lifecycle.js";
import type { Envelope, Mailbox } from "./mailbox.js";
import type { AckInfo } from "./options.js";
import type { PartitionStates } from "./partitions.js";
import type { Slot, SlotTable } from "./slots.js";
import { TurnGuard } from "./turn-guard.js";

export type { LocalOutcome, Outcome } from "./dispatch-messages.js";
export { leaseHeld };

export interface DispatchParams {
  readonly node: ShardNode;
  readonly defs: ReadonlyMap<string, EntityDefinition>;
  readonly partitions: PartitionStates;
  readonly slots: SlotTable;
  readonly lifecycle: Lifecycle;
  readonly mailbox: Mailbox;
  readonly handoff: Handoff;
  /** The one deadline mechanism for asks handled here. */
  readonly deadlines: Deadlines;
  readonly askTimeoutMs: number;
  /** Most messages buffered per pending partition. */
  readonly bufferLimit: number;
  /** Told of every ask answered as owner (the `onAck` option). */
  readonly onAck?: ((ack: AckInfo) => void) | undefined;
  /**
   * Whether a retry of an ask of this type with the same id is answered from the entity's
   * recent asks instead of applied again (replicated and stored types: handler.ts tracksAsks).
   */
  readonly retrySafe: (def: EntityDefinition) => boolean;
  /** Routes an ask again (its entity turned out to be owned elsewhere). */
  readonly reroute: (
    type: string,
    key: string,
    h: string,
    args: readonly unknown[],
    timeout: number,
  ) => Promise<unknown>;
}

export class Dispatcher {
  readonly #p: DispatchParams;
  /** Handling latency (enqueue to outcome) of every message run here, for admin reports. */
  readonly latency = new LatencyHistogram();
  /** Set while #enqueue hands a just-checked message to the mailbox (see recheck). */
  #admitting = false;
  /** The clock reading that admitted the message #enqueue is handing over (see runNow). */
  #admittedAt = 0;
  /** Answers not sent because the lease lapsed after the handler was admitted (a pause mid-turn). */
  answersWithheld = 0;
  /**
   * Gives the event loop a turn during a flood of hand-overs (turn-guard.ts): at least every
   * quarter heartbeat, and never more than 50 ms without one.
   */
  readonly turns: TurnGuard;

  constructor(params: DispatchParams) {
    this.#p = params;
    this.turns = new TurnGuard(Math.min(50, params.node.config.heartbeatMs / 4));
  }

  /**
   * The ownership check: the partition of `key` when this node owns it in its current view,
   * else -1. One hash answers both "whose is it" and "which partition". `now` is a reading of
   * the node's monotonic clock taken by the caller right before (node.monoNow()): the same read
   * times the message's handling, so the check costs no clock read of its own. `known`: the
   * key's partition when the caller has it (a known slot's; the ring size is fixed), no hash.
   */
  #mayAct(key: string, now: number, known?: number): number {
    const node = this.#p.node;
    if (!node.leaseValidAt(now)) return -1;
    const ring = node.ring;
    const p = known ?? ring.partition(key);
    return ring.ownerOfPartition(p) === node.id ? p : -1;
  }

  /** The local enqueue: the one path from a decided message to the entity's mailbox. */
  #enqueue(def: EntityDefinition, key: string, p: number, env: Envelope, now: number): void {
    this.#enqueueIn(this.#p.slots.slot(def, key, p), env, now);
  }

  /** #enqueue to a slot already looked up. */
  #enqueueIn(slot: Slot, env: Envelope, now: number): void {
    this.#p.lifecycle.touch(slot, now);
    this.#admittedAt = now;
    this.#admitting = true;
    try {
      this.#p.mailbox.enqueue(slot, env);
    } finally {
      this.#admitting = false;
    }
  }

  /**
   * The lease check again, right before an act after admission (the handler run, a copy, a
   * store write): skipped only while `#enqueue` runs, because whatever the mailbox runs
   * synchronously there happens in the same synchronous turn as the check `#mayAct` just made,
   * which no input and no timer can interleave. A message that waited, or an act after an
   * await, checks anew. Time can still pass inside a turn (a SIGSTOP, a frozen VM): what is run
   * then has no effect outside this node but its copies and store writes, which replicas and
   * the store judge by epoch, and its answer, which is why the answer always checks anew
   * (`#answerable`).
   */
  recheck(type: string, key: string, mayHaveApplied: boolean): void {
    if (!this.#admitting) leaseHeld(this.#p.node, type, key, mayHaveApplied);
  }

  /**
   * The monotonic time for stamping a handler run (the entity's idle clock, handler.ts): while
   * `#enqueue` runs, the reading that admitted the message, taken in the same synchronous turn
   * (so a local ask reads no clock for it); else a fresh reading.
   */
  runNow(): number {
    return this.#admitting ? this.#admittedAt : this.#p.node.monoNow();
  }

  /** @internal */
  monoNow(): number {
    return this.#p.node.monoNow();
  }

  /** @internal */
  cancelDeadline(d: Deadline): void {
    this.#p.deadlines.cancel(d);
  }

  /**
   * The answer's lease check: always at a fresh clock reading `now` (the one that times the
   * handling, so it costs no read of its own), even in the turn that admitted the message,
   * because a pause can land between the admission and the answer (seen as one add
   * acknowledged by a superseded owner, test/safety/pause-mid-handler.test.ts). The caller
   * reads the acknowledgement's time before `now`, so a logged acknowledgement is one made while
   * the lease held; what is left is the gap between this check and the socket write.
   */
  #answerable(now: number): boolean {
    return this.#p.node.leaseValidAt(now);
  }

  /**
   * The fast path of a local ask: when this node owns and serves the key now, runs it here
   * (no message id, no copies of the request) and returns its result; undefined otherwise,
   * for the router to take. A refused store write routes the ask again.
   */
  askHere(
    def: EntityDefinition,
    key: string,
    h: string,
    args: readonly unknown[],
    timeout: number | undefined,
  ): Promise<unknown> | undefined {
    if (!this.turns.pass()) {
      // After the event loop's turn the ask may no longer be ours: then the router takes it.
      return new Promise((resolve) =>
        this.turns.defer(() =>
          resolve(
            this.#askHere(def, key, h, args, timeout) ??
              this.#p.reroute(def.type, key, h, args, timeout ?? this.#p.askTimeoutMs),
          ),
        ),
      );
    }
    return this.#askHere(def, key, h, args, timeout);
  }

  #askHere(
    def: EntityDefinition,
    key: string,
    h: string,
    args: readonly unknown[],
    timeout: number | undefined,
  ): Promise<unknown> | undefined {
    const lt = this.#p.node.monoNow();
    // A known entity's slot says its partition: the ownership check then hashes nothing.
    const known = this.#p.slots.find(def, key);
    const p = this.#mayAct(key, lt, known?.partition);
    if (p < 0 || this.#p.partitions.state(p) !== "ready" || this.#p.defs.get(def.type) !== def)
      return undefined;
    try {
      assertArgs(args, def.type, h);
    } catch (err) {
      return Promise.reject(err);
    }
    const ask = new LocalAsk(this, def, key, h, args, timeout ?? this.#p.askTimeoutMs, lt);
    this.#enqueueIn(known ?? this.#p.slots.slot(def, key, p), ask, lt);
    return ask.start();
  }

  /** @internal The outcome of a local ask (LocalAsk): the latency, the answer's lease check. */
  localDone(
    ask: LocalAsk,
    err: unknown,
    result: unknown,
    now: number,
    t1: number,
  ): Promise<unknown> | undefined {
    const { type } = ask.def;
    // The answer is an act as owner too. A local ask carries no id to deduplicate a retry, so
    // one that ran is failed (its outcome unknown), never run again.
    if (err === undefined && !this.#answerable(now)) {
      this.answersWithheld++;
      throw new NotOwnerError(
        type,
        ask.key,
        "its lease lapsed before the answer (the ask may have been applied)",
      );
    }
    if (err === undefined) {
      this.#p.onAck?.({
        type,
        key: ask.key,
        handler: ask.h,
        args: ask.a,
        result,
        id: undefined,
        t0: ask.t0,
        t1,
      });
      return undefined;
    }
    // Refused before it ran (lease, or the store says another node owns it): route again.
    if (movedError(err) && !(err instanceof NotOwnerError && err.mayHaveApplied))
      return this.#p.reroute(type, ask.key, ask.h, ask.a, ask.ms);
    throw err;
  }

  /** @internal A deadline for a local ask still pending after its enqueue. */
  localDeadline(ask: LocalAsk): Deadline {
    const { deadlines } = this.#p;
    return deadlines.add(deadlines.clock.now() + ask.ms, () => ask.expire());
  }

  get tracksAck(): boolean {
    return this.#p.onAck !== undefined;
  }

  /**
   * Hands a message to the entity when this node owns and serves its key; "moved" when it does
   * not (or is releasing it), buffered while the partition's records are still arriving.
   * `id` is the ask's message id (retries carry the same one).
   */
  dispatch(
    type: string,
    key: string,
    h: string,
    args: readonly unknown[],
    done: (o: LocalOutcome) => void,
    id?: string,
  ): void {
    this.deliver(type, key, h, args, id, new CallbackOutcome(done));
  }

  /** As `dispatch`, with the outcome going to `out` (inbound asks: no closure per message). */
  deliver(
    type: string,
    key: string,
    h: string,
    args: readonly unknown[],
    id: string | undefined,
    out: Outcome,
  ) {
    if (this.turns.pass()) this.#deliver(type, key, h, args, id, out);
    else this.turns.defer(() => this.#deliver(type, key, h, args, id, out));
  }

  #deliver(
    type: string,
    key: string,
    h: string,
    args: readonly unknown[],
    id: string | undefined,
    out: Outcome,
  ): void {
    const def = this.#p.defs.get(type);
    if (!def) return out.failed(new UnknownEntityTypeError(type));
    // Keeps serving while closing: until the node has left, it still owns these keys.
    const lt = this.#p.node.monoNow();
    const p = this.#mayAct(key, lt);
    if (p < 0) return out.moved();
    const st = this.#p.partitions.state(p);
    if (st === "ready") {
      const t0 = this.#p.onAck ? sharedNow() : 0;
      this.#enqueue(def, key, p, new Delivery(this, type, key, h, args, id, lt, t0, out), lt);
    } else if (st === "releasing") out.moved();
    else if (!this.#p.partitions.buffer(p, () => this.#deliver(type, key, h, args, id, out)))
      out.failed(new MailboxFullError(type, key, this.#p.bufferLimit));
  }

  /** @internal The handler of a Delivery finished: its latency, the answer's lease check. */
  delivered(m: Delivery, err: unknown, r: unknown): void {
    // The acknowledgement's time, read before the lease check: a logged one was made while the
    // lease held, even when a pause lands between the check and the send.
    const t1 = this.#p.onAck ? sharedNow() : 0;
    const now = this.#p.node.monoNow();
    this.latency.record(now - m.lt);
    if (movedError(err)) return m.out.moved();
    if (!this.#answerable(now)) {
      // No answer as owner once the lease lapsed, although the handler ran. A replicated or
      // stored type answers "moved": the sender retries with the same id, which the next owner
      // (or this one, re-acquired) answers from the entity's recent asks without applying it
      // again. A plain type keeps no such record, and a retry could apply it twice when this
      // node keeps the partition (a short pause nobody took over after): its caller gets a
      // NotOwnerError whose outcome is unknown, as a local caller does.
      this.answersWithheld++;
      const def = this.#p.defs.get(m.type);
      if (def !== undefined && this.#p.retrySafe(def)) return m.out.moved();
      return m.out.failed(
        new NotOwnerError(
          m.type,
          m.key,
          "its lease lapsed before the answer (the ask may have been applied)",
        ),
      );
    }
    if (err !== undefined) return m.out.failed(err);
    this.#p.onAck?.({
      type: m.type,
      key: m.key,
      handler: m.h,
      args: m.a,
      result: r,
      id: m.id,
      t0: m.t0,
      t1,
    });
    m.out.ok(r);
  }

  /**
   * Hands an internal message (a due reminder, reminders.ts) to an entity this node holds, when
   * it may act for the key and serves its partition now; false otherwise (try again later).
   */
  deliverOwned(slot: Slot, env: Envelope): boolean {
    const now = this.#p.node.monoNow();
    const p = this.#mayAct(slot.key, now);
    if (p !== slot.partition || this.#p.partitions.state(p) !== "ready") return false;
    this.#enqueue(slot.def, slot.key, p, env, now);
    return true;
  }

  /** A new owner pulls partition `p`: hand its records over (Handoff.servePull decides when). */
  servePull(
    p: number,
    from: string,
    reply: (data: Uint8Array) => void,
    cursor?: number,
    ep?: number,
  ): Promise<void> {
    return this.#p.handoff.servePull(p, from, reply, cursor, ep);
  }

  /** The new owner `from` acknowledged partition `p`'s records, pulled with epoch `ep`. */
  ack(p: number, from: string, ep: number): void {
    this.#p.handoff.ack(p, from, ep);
  }
}
