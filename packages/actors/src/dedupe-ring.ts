// Storage of the dedupe cache (dedupe.ts) for the common ids: those of one router prefix whose
// counter was above every counter recorded before under that prefix. Such ids arrive in counter
// order, so each prefix keeps them in a ring of typed arrays (counter, time, generation, state,
// where the reply is), sorted by counter: appending one costs no hashing and no object that
// outlives the ask, and a retry finds its counter by binary search. Completed replies are copied
// into a reply arena (one buffer per generation, reused two swaps later), so the cache holds no
// Buffer per reply either. Before, every ask left an id string, an entry object, a reply view and
// its 8 KB slab in a Map for up to a window: the owner's old generation was mostly that.

import type { DedupeEntry } from "./dedupe.js";

/** A slot's state. FREE: forgotten, or superseded by a record of the same id elsewhere. */
export const FREE = 0;
export const BUSY = 1;
export const DONE = 2;

/** Replies up to this size go to the arena; larger ones are kept as they are. */
export const ARENA_MAX_REPLY = 1024;

/** One generation's reply bytes, appended; `reset` reuses the buffer. */
export class ReplyArena {
  buf = new Uint8Array(64 * 1024);
  pos = 0;

  put(b: Uint8Array): number {
    const at = this.pos;
    const end = at + b.length;
    if (end > this.buf.length) {
      const next = new Uint8Array(Math.max(end, this.buf.length * 2));
      next.set(this.buf.subarray(0, at));
      this.buf = next;
    }
    this.buf.set(b, at);
    this.pos = end;
    return at;
  }

  reset(): void {
    this.pos = 0;
  }
}

/** The ids of one prefix recorded in counter order, by sequence number (head..tail). */
export class SenderRing {
  /** The highest counter recorded under this prefix. */
  max = -1;
  /** The generation whose swap last found one of this prefix's ids in the fallback Map. */
  pinned = -1;
  head = 0;
  tail = 0;
  #mask = 63;
  cnt = new Float64Array(64);
  at = new Float64Array(64);
  gen = new Int32Array(64);
  state = new Uint8Array(64);
  /** Where a DONE slot's reply is: its arena's generation, offset and length (-1: in refs). */
  rgen = new Int32Array(64);
  roff = new Int32Array(64);
  rlen = new Int32Array(64);
  /** A BUSY slot's entry (its waiters, and what close and forget compare), or a large reply. */
  refs: (DedupeEntry | Uint8Array | undefined)[] = new Array(64).fill(undefined);

  constructor(readonly prefix: string) {}

  idx(seq: number): number {
    return seq & this.#mask;
  }

  /** Whether `seq` is a slot still in the ring. */
  has(seq: number): boolean {
    return seq >= this.head && seq < this.tail;
  }

  /** Appends a BUSY slot for counter `c` (above max) and returns its sequence number. */
  append(c: number, now: number, gen: number, e: DedupeEntry): number {
    if (this.tail - this.head > this.#mask) this.#grow();
    const seq = this.tail++;
    const i = seq & this.#mask;
    this.cnt[i] = c;
    this.at[i] = now;
    this.gen[i] = gen;
    this.state[i] = BUSY;
    this.refs[i] = e;
    this.max = c;
    return seq;
  }

  /** The sequence number of the slot of counter `c`, or -1 (binary search: counters grow). */
  find(c: number): number {
    let lo = this.head;
    let hi = this.tail - 1;
    const mask = this.#mask;
    while (lo <= hi) {
      const mid = lo + ((hi - lo) >> 1);
      const x = this.cnt[mid & mask]!;
      if (x === c) return mid;
      if (x < c) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Drops slot `seq`'s contents (FREE). */
  free(seq: number): void {
    const i = seq & this.#mask;
    this.state[i] = FREE;
    this.refs[i] = undefined;
  }

  #grow(): void {
    const old = this.#mask;
    const mask = (old + 1) * 2 - 1;
    const { head, tail } = this;
    // Each slot keeps its sequence number, so it moves from `s & old` to `s & mask`.
    const moved = <A extends { [i: number]: unknown }>(from: A, to: A): A => {
      for (let s = head; s < tail; s++) to[s & mask] = from[s & old]!;
      return to;
    };
    const n = mask + 1;
    this.cnt = moved(this.cnt, new Float64Array(n));
    this.at = moved(this.at, new Float64Array(n));
    this.gen = moved(this.gen, new Int32Array(n));
    this.state = moved(this.state, new Uint8Array(n));
    this.rgen = moved(this.rgen, new Int32Array(n));
    this.roff = moved(this.roff, new Int32Array(n));
    this.rlen = moved(this.rlen, new Int32Array(n));
    this.refs = moved(this.refs, new Array<DedupeEntry | Uint8Array | undefined>(n).fill(undefined));
    this.#mask = mask;
  }
}
