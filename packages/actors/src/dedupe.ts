// Remembers recently handled ask ids with their encoded replies, so a retried ask (same id) is
// answered again rather than applied twice. Bounded by age and by count, oldest first; an ask
// still in progress is kept at most windowMs and a half.
//
// The common case costs one Map insert and no lookup. Our routers make ids of a fixed random
// prefix per process and a base-36 counter (remote-ask.ts MessageIds), so the cache keeps, per
// prefix, the highest counter it recorded: an id whose counter is above it was never recorded,
// and needs no lookup in the generations (two misses in Maps of up to dedupeMaxEntries / 2 ids,
// most of the owner's dedupe cost before). Anything else, a retry, an id that arrives out of
// order, an id of any other shape, is looked up as before. This holds for every id whatever its
// shape: the counter is a function of the id, so an id recorded once has a counter at or below
// its prefix's highest, as long as the prefix's record lives, and a prefix's record is dropped
// only once none of its ids is left in the cache (see #rotate).

/** One remembered id; `open` hands a new one out so that `close` needs no lookup. */
export class DedupeEntry {
  constructor(
    readonly id: string,
    readonly at: number,
    /**
     * The encoded reply, or for an ask still being handled its waiters (undefined until a
     * duplicate arrives: most asks have none, and no array is made for them).
     */
    public reply: Uint8Array | ((reply: Uint8Array) => void)[] | undefined,
  ) {}
}
type Entry = DedupeEntry;

/** Characters of a router's id prefix (9 random bytes in base64url: remote-ask.ts). */
export const ID_PREFIX_CHARS = 12;
/** Most counter digits read: 36^10 is below 2^53, so every counter is an exact number. */
const MAX_COUNTER_DIGITS = 10;

/** The counter of an id made of a prefix and base-36 digits (lower case), else -1. */
export function idCounter(id: string): number {
  const n = id.length;
  if (n <= ID_PREFIX_CHARS || n > ID_PREFIX_CHARS + MAX_COUNTER_DIGITS) return -1;
  let c = 0;
  for (let i = ID_PREFIX_CHARS; i < n; i++) {
    const x = id.charCodeAt(i);
    let d: number;
    if (x >= 48 && x <= 57) d = x - 48;
    else if (x >= 97 && x <= 122) d = x - 87;
    else return -1;
    c = c * 36 + d;
  }
  return c;
}

/** What the cache knows of one id prefix: its highest counter recorded, and when. */
class Sender {
  constructor(
    readonly prefix: string,
    /** The highest counter recorded under this prefix. */
    public max: number,
    /** The generation (#gen) of the last id recorded under this prefix. */
    public gen: number,
  ) {}
}

export class DedupeCache {
  readonly #windowMs: number;
  readonly #max: number;
  // Two generations, swapped every half window or half the count limit: lookups check both,
  // inserts go to the young one, and a swap drops the old one whole. No per-insert eviction
  // scan (a FIFO over one Map slows to tens of µs per insert once it holds 100k ids, as V8
  // keeps deleted slots until it rehashes), and an id is remembered at least half the window.
  #young = new Map<string, Entry>();
  #old = new Map<string, Entry>();
  #since = 0;
  /** Counts swaps: the young generation's number. */
  #gen = 0;
  readonly #senders = new Map<string, Sender>();
  /** The prefix seen last (most batches come from one asker): no Map lookup for it. */
  #last: Sender | undefined;
  /** Asks that skipped the lookup (their id's counter was above its prefix's highest). */
  fresh = 0;

  constructor(windowMs: number, maxEntries: number) {
    this.#windowMs = windowMs;
    this.#max = maxEntries;
  }

  get enabled(): boolean {
    return this.#windowMs > 0 && this.#max > 0;
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  /** Prefixes the cache tracks (each has at least one id in the cache, or had until the last swap). */
  get senders(): number {
    return this.#senders.size;
  }

  #get(id: string): Entry | undefined {
    return this.#young.get(id) ?? this.#old.get(id);
  }

  /** The record of `id`'s prefix; made when `make` (an id about to be recorded). */
  #sender(id: string, make: boolean): Sender | undefined {
    const last = this.#last;
    if (last !== undefined && id.startsWith(last.prefix)) return last;
    const prefix = id.slice(0, ID_PREFIX_CHARS);
    let s = this.#senders.get(prefix);
    if (s === undefined) {
      if (!make) return undefined;
      // New: nothing of this prefix is in the cache (a record outlives its last id, #rotate).
      s = new Sender(prefix, -1, this.#gen);
      this.#senders.set(prefix, s);
    }
    this.#last = s;
    return s;
  }

  /**
   * Looks an id up. `undefined`: never seen, and now recorded as in progress (call `complete`).
   * A Uint8Array: the earlier reply. A promise: the first attempt is still running.
   */
  begin(id: string, now: number): Uint8Array | Promise<Uint8Array> | undefined {
    const r = this.open(id, now);
    return r instanceof DedupeEntry ? undefined : r;
  }

  /** As `begin`, but a new id returns its entry, for `close` (one lookup less per ask). */
  open(id: string, now: number): Uint8Array | Promise<Uint8Array> | DedupeEntry {
    const c = idCounter(id);
    const s = c >= 0 ? this.#sender(id, true) : undefined;
    if (s !== undefined && c > s.max) {
      s.max = c;
      this.fresh++;
    } else {
      const e = this.#get(id);
      if (e && now - e.at <= this.#windowMs) {
        if (e.reply instanceof Uint8Array) return e.reply;
        const waiters = e.reply ?? [];
        e.reply = waiters;
        return new Promise((resolve) => waiters.push(resolve));
      }
    }
    if (now - this.#since >= this.#windowMs / 2 || this.#young.size >= this.#max / 2) {
      this.#rotate(now);
      // The swap may have dropped s (none of its ids was left in the old generation), but the
      // id recorded below is one of its ids: without its record back, the next retry of this id
      // would pass for fresh (its counter above a new record's -1) and run again.
      if (s !== undefined && this.#senders.get(s.prefix) !== s) this.#senders.set(s.prefix, s);
    }
    if (s !== undefined) s.gen = this.#gen;
    const fresh = new DedupeEntry(id, now, undefined);
    this.#young.set(id, fresh);
    return fresh;
  }

  #rotate(now: number): void {
    // Asks still being handled move along, so their waiters are not dropped, but only within
    // the window: one that never completes (its handler hangs, or its node lost the entity
    // mid-way) is forgotten once older than windowMs, like any other entry. Its waiters are
    // duplicates whose senders' deadlines cover them.
    const keep = new Map<string, Entry>();
    for (const [k, v] of this.#old)
      if (!(v.reply instanceof Uint8Array) && now - v.at <= this.#windowMs) keep.set(k, v);
    this.#old = this.#young;
    for (const [k, v] of keep) this.#old.set(k, v);
    this.#young = new Map();
    this.#since = now;
    const gen = ++this.#gen;
    // The old generation now holds the ids recorded in generation gen - 1 and the kept ones:
    // a prefix none of them has has nothing left in the cache, and its record goes.
    this.#last = undefined;
    for (const k of keep.keys()) {
      const s = idCounter(k) >= 0 ? this.#sender(k, false) : undefined;
      if (s !== undefined) s.gen = gen - 1;
    }
    this.#last = undefined;
    for (const [p, s] of this.#senders) if (s.gen < gen - 1) this.#senders.delete(p);
  }

  /** `complete` for the entry `open` returned. */
  close(e: DedupeEntry, reply: Uint8Array): void {
    const waiters = e.reply;
    e.reply = reply;
    if (Array.isArray(waiters)) for (const w of waiters) w(reply);
  }

  complete(id: string, reply: Uint8Array): void {
    const e = this.#get(id);
    if (!e) return;
    const waiters = e.reply;
    e.reply = reply;
    if (Array.isArray(waiters)) for (const w of waiters) w(reply);
  }

  /**
   * Forgets the entry `open` handed out: the ask was redirected, not handled, so a retry must
   * run. Duplicates that were waiting on it get `reply` (the same redirect) and retry too.
   *
   * By entry, not by id: an attempt that outlived its id's window may end after a retry of the
   * same id was recorded anew (its own entry), and forgetting that newer entry would let a third
   * attempt run while the retry is still being handled.
   */
  forget(e: DedupeEntry, reply: Uint8Array): void {
    const id = e.id;
    if (this.#young.get(id) === e) this.#young.delete(id);
    if (this.#old.get(id) === e) this.#old.delete(id);
    const waiters = e.reply;
    if (Array.isArray(waiters)) {
      e.reply = undefined;
      for (const w of waiters) w(reply);
    }
  }
}
