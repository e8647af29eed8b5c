// Group commit for replicated and stored entities: an entity handles its next messages while
// the write of the previous ones is on its way to the replica quorum and the store, and each
// answer is held until a write covering its version is durable, then released in handling order.
// One write per entity is in flight at a time; the next one carries the newest state (covering
// every message handled meanwhile), so a hot key pays one round trip per batch, not per message.
//
// What is written is the entity's state at the moment the write starts: durability.ts encodes it
// (the replica copy and the store entry) synchronously, at a point where no handler of the entity
// is part-way through (a write starts only between two handlers), so a version never carries half
// of the next message. A crash before a write is durable loses only answers nobody heard: the
// caller retries its ask with the same id, and the remembered asks (`recent`) that travel with
// the state answer it if it was applied after all.
//
// Failures: a write that fails (no quorum, store unreachable) fails the answers it covered, as a
// failed write did before; later messages are covered by the next write. A write refused because
// another node owns the entity (a replica's `stale`, a store conflict) gave the entity up
// (durability.ts): every held answer fails with that error, which routers treat as "moved".
// Answers that change nothing (read-only handlers, retried asks answered from `recent`) also wait
// for the write covering the version they saw, so no one hears of state that is not yet durable.
//
// Dedupe across a crash: an entity remembers the ids of its last RECENT_ASKS applied asks plus
// every ask whose answer is still held here (handler.ts trims `recent` to RECENT_ASKS + held), so
// a whole batch applied by a durable write but never answered is still recognised when its
// callers retry on the next owner. At most MAX_HELD_ANSWERS (wire.ts) are held per entity: past
// that, the mailbox waits for the write in flight before the next message.
import { NotOwnerError, StoreConflictError } from "./errors.js";
import type { Slot } from "./slots.js";
import { MAX_HELD_ANSWERS } from "./wire.js";

export interface GroupCommitParams {
  /** The durable write of the slot's current state (durability.ts persist). */
  readonly persist: (slot: Slot) => Promise<void> | undefined;
  /** Most answers held per entity (at most, and by default, MAX_HELD_ANSWERS). */
  readonly maxHeld?: number;
}

export interface GroupCommitStats {
  /** Durable writes started by group commit. */
  writes: number;
  /** Answers released (after their covering write succeeded or failed). */
  released: number;
}

interface Held {
  /** The entity's version when the answer was produced: a write of it or later covers it. */
  readonly ver: number;
  /** Sends the answer (err undefined) or fails it with the covering write's error. */
  readonly release: (err: unknown) => void;
}

interface Pipe {
  held: Held[];
  /** The version the write in flight covers; undefined when none is. */
  inFlight: number | undefined;
  /** The highest version known durable on this node's tenure. */
  durable: number;
  /** Writer handlers started and not yet completed (an async handler part-way through). */
  running: number;
  /** A microtask will start a write if none is under way (see #later). */
  scheduled: boolean;
  /** Mailbox pumps waiting to go on (see #wait). */
  waiters: (() => void)[];
}

export class GroupCommit {
  readonly #p: GroupCommitParams;
  readonly #max: number;
  readonly #pipes = new WeakMap<Slot, Pipe>();
  readonly stats: GroupCommitStats = { writes: 0, released: 0 };

  constructor(params: GroupCommitParams) {
    this.#p = params;
    this.#max = Math.min(params.maxHeld ?? MAX_HELD_ANSWERS, MAX_HELD_ANSWERS);
  }

  /** A writer handler is about to run on the slot: no write may start until it completed. */
  begin(slot: Slot): void {
    const pipe = this.#pipes.get(slot);
    if (pipe) pipe.running++;
  }

  /** How many answers of the slot are held now (their asks are applied, not yet answered). */
  held(slot: Slot): number {
    return this.#pipes.get(slot)?.held.length ?? 0;
  }

  /**
   * A writer handler completed and bumped the slot's version: `release` runs once a write
   * covering it is durable (or fails with the write's error). Returns what the mailbox waits for
   * before the next message: nothing while more messages are queued (they run during the write),
   * else the next point where a queued message may run or the entity is fully durable.
   */
  hold(slot: Slot, release: (err: unknown) => void, began: boolean): Promise<void> | undefined {
    let pipe = this.#pipes.get(slot);
    if (!pipe) pipe = this.#pipe(slot);
    else if (began && pipe.running > 0) pipe.running--;
    pipe.held.push({ ver: slot.version, release });
    return this.#after(slot, pipe);
  }

  /**
   * An answer that changed nothing (a read, or a retried ask answered from `recent`): sent now
   * when the version it saw is durable, else held like a write's answer.
   */
  after(slot: Slot, release: (err: unknown) => void): Promise<void> | undefined {
    let pipe = this.#pipes.get(slot);
    if (
      (!pipe && !slot.unconfirmed) ||
      (pipe && pipe.held.length === 0 && pipe.inFlight === undefined && pipe.durable >= slot.version)
    ) {
      release(undefined);
      return undefined;
    }
    // A state not known durable in this tenure (slots.ts unconfirmed): write it first.
    if (!pipe) pipe = this.#pipe(slot);
    pipe.held.push({ ver: slot.version, release });
    return this.#after(slot, pipe);
  }

  #pipe(slot: Slot): Pipe {
    const pipe: Pipe = {
      held: [],
      inFlight: undefined,
      durable: slot.version - 1,
      running: 0,
      scheduled: false,
      waiters: [],
    };
    this.#pipes.set(slot, pipe);
    return pipe;
  }

  #after(slot: Slot, pipe: Pipe): Promise<void> | undefined {
    const queued = (slot.queue?.length ?? 0) > 0;
    if (pipe.inFlight === undefined && pipe.running === 0) {
      // Between two handlers: a write may start now. While messages are queued it waits for
      // the last of them (one write covers the run), with a microtask as the backstop for a run
      // that ends without another handler (a failed lease check, a dead slot).
      if (!queued || pipe.held.length >= this.#max) this.#flush(slot, pipe);
      else this.#later(slot, pipe);
    }
    if (queued && pipe.held.length < this.#max) return undefined;
    // A write that settled at once (nothing to make durable) released everything already.
    if (pipe.held.length === 0 && pipe.inFlight === undefined) return undefined;
    return this.#wait(pipe);
  }

  #later(slot: Slot, pipe: Pipe): void {
    if (pipe.scheduled) return;
    pipe.scheduled = true;
    queueMicrotask(() => {
      pipe.scheduled = false;
      if (pipe.inFlight === undefined && pipe.running === 0 && this.#unwritten(pipe)) this.#flush(slot, pipe);
    });
  }

  #wait(pipe: Pipe): Promise<void> {
    return new Promise((resolve) => pipe.waiters.push(resolve));
  }

  /** Whether a held answer is not covered by the durable version (nor by the write in flight). */
  #unwritten(pipe: Pipe): boolean {
    const last = pipe.held[pipe.held.length - 1];
    return last !== undefined && last.ver > Math.max(pipe.durable, pipe.inFlight ?? 0);
  }

  /** Starts the write of the slot's current state, covering every held answer. */
  #flush(slot: Slot, pipe: Pipe): void {
    const ver = slot.version;
    let write: Promise<void> | undefined;
    try {
      write = this.#p.persist(slot);
    } catch (err) {
      write = Promise.reject(err);
    }
    this.stats.writes++;
    if (write === undefined) {
      this.#done(slot, pipe, ver, undefined);
      return;
    }
    pipe.inFlight = ver;
    write.then(
      () => this.#done(slot, pipe, ver, undefined),
      (err: unknown) =>
        this.#done(slot, pipe, ver, err === undefined ? new Error("durable write failed") : err),
    );
  }

  /** The write covering `ver` ended: release what it covers, start the next, wake the mailbox. */
  #done(slot: Slot, pipe: Pipe, ver: number, err: unknown): void {
    pipe.inFlight = undefined;
    // Another node owns the entity: nothing held here may be answered as if it were durable.
    const gone = err instanceof NotOwnerError || err instanceof StoreConflictError;
    if (err === undefined && ver > pipe.durable) pipe.durable = ver;
    // The state written holds whatever was installed before it: known durable from now on.
    if (err === undefined) slot.unconfirmed = false;
    let n = 0;
    while (n < pipe.held.length && (gone || pipe.held[n]!.ver <= ver)) n++;
    const released = pipe.held.splice(0, n);
    this.stats.released += released.length;
    for (const h of released) h.release(err);
    if (gone) this.#pipes.delete(slot);
    else if (pipe.running === 0 && this.#unwritten(pipe)) this.#flush(slot, pipe);
    const empty = pipe.held.length === 0 && pipe.inFlight === undefined;
    if (empty && !gone && pipe.durable >= slot.version) this.#pipes.delete(slot);
    if (empty || ((slot.queue?.length ?? 0) > 0 && pipe.held.length < this.#max)) {
      const waiters = pipe.waiters.splice(0);
      for (const w of waiters) w();
    }
  }
}
