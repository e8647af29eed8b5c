// What this node does with each partition it holds: pending (owned, records still arriving;
// messages wait in a bounded buffer), ready (served), releasing (draining for the next owner).
// Steps of one partition run in order on its own chain; different partitions move in parallel.
// Each time this node starts serving a partition it takes a new epoch for that tenure (see
// `begin` and epochs.ts): it travels with every record written under it and orders records
// before versions do.
import type { Logger } from "@keyhold/core";
import type { MessageContext } from "./mailbox.js";

export type PartState =
  | { readonly s: "pending"; readonly buffer: (() => void)[] }
  | { readonly s: "ready" }
  | {
      readonly s: "releasing";
      readonly done: Promise<void>;
      /** Draining timed out: only handlers that were running then are waited for. */
      readonly busy?: boolean;
    };

export class PartitionStates {
  readonly #parts = new Map<number, PartState>();
  readonly #chains = new Map<number, Promise<void>>();
  // Per partition: the highest epoch seen in any record, copy or pull, and the epoch of this
  // node's current (or last) tenure. One entry per partition ever held: bounded by the ring size.
  readonly #stamps = new Map<number, { seen: number; current: number }>();
  readonly #bufferLimit: number;
  readonly #logger: Logger;
  readonly #nodeId: string;
  /** Messages buffered while a partition was pending. */
  buffered = 0;

  /** With telemetry on: a buffered message is replayed in its caller's trace context (mailbox.ts). */
  readonly #context: MessageContext | undefined;

  constructor(params: {
    bufferLimit: number;
    logger: Logger;
    nodeId: string;
    context?: MessageContext | undefined;
  }) {
    this.#bufferLimit = params.bufferLimit;
    this.#context = params.context;
    this.#logger = params.logger;
    this.#nodeId = params.nodeId;
  }

  /** "ready", "pending", "releasing", or undefined when this node does not hold the partition. */
  state(p: number): PartState["s"] | undefined {
    return this.#parts.get(p)?.s;
  }

  get(p: number): PartState | undefined {
    return this.#parts.get(p);
  }

  set(p: number, st: PartState): void {
    this.#parts.set(p, st);
  }

  delete(p: number): void {
    this.#parts.delete(p);
  }

  has(p: number): boolean {
    return this.#parts.has(p);
  }

  /** Partitions this node holds in any state (owned, pending or releasing). */
  get heldCount(): number {
    return this.#parts.size;
  }

  /** Partitions this node serves. */
  ready(): number[] {
    const out: number[] = [];
    for (const [p, st] of this.#parts) if (st.s === "ready") out.push(p);
    return out;
  }

  /** The pending state of `p`, created when the node does not hold it yet. */
  pending(p: number): PartState & { s: "pending" } {
    const st = this.#parts.get(p);
    if (st?.s === "pending") return st;
    const fresh = { s: "pending" as const, buffer: [] };
    this.#parts.set(p, fresh);
    return fresh;
  }

  /**
   * Buffers a message for a partition this node owns but does not serve yet (pending, or its
   * acquired event not yet processed). False when the buffer is full or the partition is not ours.
   */
  buffer(p: number, retry: () => void): boolean {
    const st = this.#parts.get(p) ?? this.pending(p);
    if (st.s !== "pending" || st.buffer.length >= this.#bufferLimit) return false;
    const c = this.#context;
    if (c === undefined) st.buffer.push(retry);
    else {
      const ctx = c.capture();
      st.buffer.push(() => c.within(ctx, retry));
    }
    this.buffered++;
    return true;
  }

  /** The epoch of this node's current (or last) tenure of `p`; 0 before its first. */
  stamp(p: number): number {
    return this.#stamps.get(p)?.current ?? 0;
  }

  /** The highest epoch of `p` this node has seen (in records, copies, pulls, or its own). */
  seen(p: number): number {
    return this.#stamps.get(p)?.seen ?? 0;
  }

  /** A record, copy or pull of `p` carrying epoch `acq` reached this node. */
  see(p: number, acq: number): void {
    const st = this.#stamps.get(p);
    if (st === undefined) this.#stamps.set(p, { seen: acq, current: 0 });
    else if (acq > st.seen) st.seen = acq;
  }

  /**
   * Starts a tenure of `p` under `epoch`, taken from the epoch source (epochs.ts) above every
   * epoch seen for `p`. Records written from now on carry it.
   */
  begin(p: number, epoch: number): number {
    const st = this.#stamps.get(p) ?? { seen: 0, current: 0 };
    this.#stamps.set(p, { seen: Math.max(st.seen, epoch), current: epoch });
    return epoch;
  }

  /** Runs `step` after every earlier step of partition `p`; a failing step is logged. */
  chain(p: number, step: () => Promise<void>): Promise<void> {
    const next = (this.#chains.get(p) ?? Promise.resolve()).then(step).catch((err: unknown) => {
      this.#logger.error(`node ${this.#nodeId}: hand-off step for partition ${p} failed: ${String(err)}`);
    });
    this.#chains.set(p, next);
    void next.then(() => {
      if (this.#chains.get(p) === next) this.#chains.delete(p);
    });
    return next;
  }

  /** Resolves when every queued step has run. */
  async settled(): Promise<void> {
    while (this.#chains.size > 0) await Promise.all([...this.#chains.values()]);
  }
}
