// The messages the dispatcher (dispatch.ts) hands to a mailbox, each one object: a local ask
// (LocalAsk), and a message handed to `deliver` (Delivery), whose outcome goes to an Outcome.
import type { Deadline, ShardNode } from "@keyhold/core";
import type { Dispatcher } from "./dispatch.js";
import type { EntityDefinition } from "./entity.js";
import { DeadlineExceededError, NotOwnerError, StoreConflictError } from "./errors.js";
import { type Envelope, SlotMoved } from "./mailbox.js";

/**
 * A local ask (the fast path of askHere) as one object: it is the mailbox envelope, its `done`
 * a method, and a promise is made only when the handler did not finish inside the enqueue
 * (an idle entity and a synchronous handler answer there, the common case).
 */
export class LocalAsk implements Envelope {
  readonly id = undefined;
  readonly run = undefined;
  readonly t0: number;
  /** 0 pending, 1 answered (`#value` the result), 2 failed (`#value` the error), 3 routed again (`#value` its promise), 4 timed out. */
  #state = 0;
  #value: unknown;
  #deadline: Deadline | undefined;
  #resolve: ((v: unknown) => void) | undefined;
  #reject: ((err: unknown) => void) | undefined;

  constructor(
    readonly d: Dispatcher,
    readonly def: EntityDefinition,
    readonly key: string,
    readonly h: string,
    readonly a: readonly unknown[],
    readonly ms: number,
    readonly lt: number,
  ) {
    this.t0 = d.tracksAck ? sharedNow() : 0;
  }

  done(err: unknown, r?: unknown): void {
    // The acknowledgement's time first, then the reading that times the ask and checks the
    // answer's lease (dispatch.ts localDone): a logged acknowledgement was made under the lease.
    const t1 = this.t0 !== 0 ? sharedNow() : 0;
    const now = this.d.monoNow();
    this.d.latency.record(now - this.lt);
    if (this.#state !== 0) return; // timed out already: counted, not answered
    if (this.#deadline !== undefined) this.d.cancelDeadline(this.#deadline);
    try {
      const next = this.d.localDone(this, err, r, now, t1);
      this.#state = next === undefined ? 1 : 3;
      this.#value = next === undefined ? r : next;
    } catch (e) {
      this.#state = 2;
      this.#value = e;
    }
    if (this.#state === 2) this.#reject?.(this.#value);
    else this.#resolve?.(this.#value);
  }

  /** Timed out while the handler runs (it cannot be interrupted; its message stays queued). */
  expire(): void {
    if (this.#state !== 0) return;
    this.#state = 4;
    this.#reject?.(
      new DeadlineExceededError(
        { type: this.def.type, key: this.key, handler: this.h },
        this.ms,
        "the local handler is still running",
      ),
    );
  }

  /** The ask's promise, right after the enqueue. */
  start(): Promise<unknown> {
    if (this.#state === 1) return Promise.resolve(this.#value);
    if (this.#state === 2) return Promise.reject(this.#value);
    if (this.#state === 3) return this.#value as Promise<unknown>;
    this.#deadline = this.d.localDeadline(this);
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }
}

/** The outcome of a message handed to this node: its result or error, or "not mine, route again". */
export type LocalOutcome = { ok: true; result: unknown } | { ok: false; error: unknown } | { moved: true };

/**
 * Where the outcome of a message handed to `deliver` goes: exactly one of the three is called,
 * once. An object rather than a callback, so that the inbound side needs one object per ask
 * (inbound.ts InboundAsk) and no closure.
 */
export interface Outcome {
  ok(result: unknown): void;
  failed(error: unknown): void;
  /** Not handled here as owner: the sender routes it again. */
  moved(): void;
}

/** `dispatch`'s callback as an Outcome. */
export class CallbackOutcome implements Outcome {
  constructor(readonly done: (o: LocalOutcome) => void) {}
  ok(result: unknown): void {
    this.done({ ok: true, result });
  }
  failed(error: unknown): void {
    this.done({ ok: false, error });
  }
  moved(): void {
    this.done({ moved: true });
  }
}

/** A message handed to `deliver`, as one object: the mailbox envelope and what the answer needs. */
export class Delivery implements Envelope {
  readonly run = undefined;
  constructor(
    readonly d: Dispatcher,
    readonly type: string,
    readonly key: string,
    readonly h: string,
    readonly a: readonly unknown[],
    readonly id: string | undefined,
    /** The monotonic reading the admission check used (it times the handling). */
    readonly lt: number,
    readonly t0: number,
    readonly out: Outcome,
  ) {}

  done(err: unknown, r?: unknown): void {
    this.d.delivered(this, err, r);
  }
}

/** The time base of AckInfo: monotonic, comparable between processes of one machine. */
export function sharedNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The lease half of the ownership check, for acts after admission. Throws NotOwnerError when
 * this node's lease is not valid now.
 */
export function leaseHeld(node: ShardNode, type: string, key: string, mayHaveApplied = true): void {
  if (!node.leaseValid()) throw new NotOwnerError(type, key, "its lease is not valid", mayHaveApplied);
}

/** Errors that mean "not applied here as owner: route it again". */
export function movedError(err: unknown): boolean {
  return err instanceof StoreConflictError || err instanceof NotOwnerError || err instanceof SlotMoved;
}
