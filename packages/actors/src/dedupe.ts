// Remembers recently handled ask ids with their encoded replies, so a retried ask (same id) is
// answered again rather than applied twice. Bounded by age and by count, oldest first; an ask
// still in progress is kept at most windowMs and a half.
//
// The common case costs no lookup and no Map: our routers make ids of a fixed random prefix per
// process and a base-36 counter (remote-ask.ts MessageIds), so the cache keeps, per prefix, the
// highest counter it recorded: an id whose counter is above it was never recorded, needs no
// lookup, and is appended to its prefix's ring of typed arrays (dedupe-ring.ts), its reply
// copied into a reply arena on completion. Anything else, a retry, an id that arrives out of
// order, an id of any other shape, is looked up (the fallback Map, then the ring by binary
// search). This holds for every id whatever its shape: the counter is a function of the id (and
// one id per counter), so an id recorded once has a counter at or below its prefix's highest, as
// long as the prefix's record lives, and a prefix's record is dropped only once none of its ids
// is left in the cache (see #rotate). dedupe.test.ts compares it with a model of two Maps.
import { ARENA_MAX_REPLY, BUSY, DONE, FREE, ReplyArena, SenderRing } from "./dedupe-ring.js";

/** One remembered id; `open` hands a new one out so that `close` needs no lookup. */
export class DedupeEntry {
  /** The ring it has a slot in (dedupe-ring.ts), and the slot's sequence number; else the Map. */
  ring: SenderRing | undefined = undefined;
  seq = -1;
  /** Its generation, for an entry in the fallback Map (a ring slot has its own). */
  gen = 0;
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

/**
 * The counter of an id made of a prefix and base-36 digits (lower case, no leading zero), else
 * -1. One id per prefix and counter (the ring stores counters, not ids: "…01" is not "…1").
 */
export function idCounter(id: string): number {
  const n = id.length;
  if (n <= ID_PREFIX_CHARS || n > ID_PREFIX_CHARS + MAX_COUNTER_DIGITS) return -1;
  if (n > ID_PREFIX_CHARS + 1 && id.charCodeAt(ID_PREFIX_CHARS) === 48) return -1;
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

/** A hit: the earlier reply, or a promise of it (the first attempt is still running). */
type Hit = Uint8Array | Promise<Uint8Array>;

export class DedupeCache {
  readonly #windowMs: number;
  readonly #max: number;
  // Two generations, swapped every half window or half the count limit: an id is remembered
  // while its generation is the young one (#gen) or the one before, and an ask still in progress
  // is carried along into each new old generation while it is younger than the window. Each id
  // is in one of two stores (dedupe-ring.ts explains the first): the ring of its prefix when it
  // came with a counter above every counter recorded before under its prefix (the common case),
  // else the fallback Map (retries recorded anew, ids of other shapes, in-progress asks carried
  // past their generation). A swap is then a generation number, not a Map: what it drops goes
  // from the head of each ring, and the fallback Map is swept.
  readonly #fallback = new Map<string, Entry>();
  readonly #senders = new Map<string, SenderRing>();
  /** The prefix seen last (most batches come from one asker): no Map lookup for it. */
  #last: SenderRing | undefined;
  #since = 0;
  /** Counts swaps: the young generation's number. */
  #gen = 0;
  /** Ids recorded in the young generation (what the count limit is compared with). */
  #young = 0;
  /** Reply arenas of the young generation and of the one before (dedupe-ring.ts). */
  #arena = new ReplyArena();
  #arenaOld = new ReplyArena();
  /** Asks that skipped the lookup (their id's counter was above its prefix's highest). */
  fresh = 0;

  constructor(windowMs: number, maxEntries: number) {
    this.#windowMs = windowMs;
    this.#max = maxEntries;
  }

  get enabled(): boolean {
    return this.#windowMs > 0 && this.#max > 0;
  }

  /** Ids remembered (a scan: for tests and diagnostics). */
  get size(): number {
    let n = this.#fallback.size;
    for (const s of this.#senders.values())
      for (let q = s.head; q < s.tail; q++) if (s.state[s.idx(q)] !== FREE) n++;
    return n;
  }

  /** Prefixes the cache tracks (each has at least one id in the cache, or had until the last swap). */
  get senders(): number {
    return this.#senders.size;
  }

  /** The record of `id`'s prefix; made when `make` (an id about to be recorded). */
  #sender(id: string, make: boolean): SenderRing | undefined {
    const last = this.#last;
    if (last !== undefined && id.startsWith(last.prefix)) return last;
    const prefix = id.slice(0, ID_PREFIX_CHARS);
    let s = this.#senders.get(prefix);
    if (s === undefined) {
      if (!make) return undefined;
      // New: nothing of this prefix is in the cache (a record outlives its last id, #rotate).
      s = new SenderRing(prefix);
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

  #wait(e: Entry): Promise<Uint8Array> {
    const waiters = Array.isArray(e.reply) ? e.reply : [];
    e.reply = waiters;
    return new Promise((resolve) => waiters.push(resolve));
  }

  /** As `begin`, but a new id returns its entry, for `close` (one lookup less per ask). */
  open(id: string, now: number): Hit | DedupeEntry {
    const c = idCounter(id);
    const s = c >= 0 ? this.#sender(id, true) : undefined;
    const window = this.#windowMs;
    const fresh = s !== undefined && c > s.max;
    /** The id's expired record, if any: in the young generation (replaced, not added), in a ring. */
    let stale: Entry | undefined;
    let staleSeq = -1;
    if (fresh) this.fresh++;
    else {
      const f = this.#fallback.get(id);
      if (f !== undefined) {
        if (now - f.at <= window) return f.reply instanceof Uint8Array ? f.reply : this.#wait(f);
        stale = f;
      } else if (s !== undefined) {
        const q = s.find(c);
        if (q >= 0) {
          const i = s.idx(q);
          const st = s.state[i];
          if (st !== FREE) {
            if (now - s.at[i]! <= window) {
              if (st === BUSY) return this.#wait(s.refs[i] as Entry);
              const big = s.refs[i];
              if (big instanceof Uint8Array) return big;
              const a = s.rgen[i] === this.#gen ? this.#arena : this.#arenaOld;
              return a.buf.slice(s.roff[i]!, s.roff[i]! + s.rlen[i]!);
            }
            staleSeq = q;
          }
        }
      }
    }
    if (now - this.#since >= window / 2 || this.#young >= this.#max / 2) {
      this.#rotate(now);
      // The swap may have dropped s (none of its ids was left in the old generation), but the
      // id recorded below is one of its ids: without its record back, the next retry of this id
      // would pass for fresh (its counter above a new record's -1) and run again.
      if (s !== undefined && this.#senders.get(s.prefix) !== s) this.#senders.set(s.prefix, s);
    }
    const gen = this.#gen;
    const e = new DedupeEntry(id, now, undefined);
    if (fresh) {
      e.ring = s;
      e.seq = s.append(c, now, gen, e);
      this.#young++;
      return e;
    }
    // A record anew replaces the expired one (the young generation holds one record per id).
    let replaced = false;
    if (stale !== undefined) replaced = stale.gen === gen;
    else if (staleSeq >= 0 && s !== undefined && s.has(staleSeq)) {
      const i = s.idx(staleSeq);
      if (s.state[i] !== FREE) {
        replaced = s.gen[i] === gen;
        s.free(staleSeq);
      }
    }
    e.gen = gen;
    this.#fallback.set(id, e);
    if (!replaced) this.#young++;
    return e;
  }

  #rotate(now: number): void {
    const gen = ++this.#gen;
    this.#since = now;
    this.#young = 0;
    const arena = this.#arenaOld;
    this.#arenaOld = this.#arena;
    arena.reset();
    this.#arena = arena;
    const window = this.#windowMs;
    // Asks still being handled move along, so their waiters are not dropped, but only within
    // the window: one that never completes (its handler hangs, or its node lost the entity
    // mid-way) is forgotten once older than windowMs, like any other entry. Its waiters are
    // duplicates whose senders' deadlines cover them. A ring keeps only the two generations:
    // what it carries along moves to the fallback Map.
    for (const s of this.#senders.values()) {
      while (s.head < s.tail) {
        const i = s.idx(s.head);
        if (s.gen[i]! >= gen - 1) break;
        if (s.state[i] === BUSY && now - s.at[i]! <= window) {
          const e = s.refs[i] as Entry;
          e.ring = undefined;
          e.seq = -1;
          e.gen = gen - 1;
          this.#fallback.set(e.id, e);
        }
        s.free(s.head);
        s.head++;
      }
    }
    for (const [k, e] of this.#fallback) {
      if (e.gen >= gen - 1) continue;
      if (!(e.reply instanceof Uint8Array) && now - e.at <= window) e.gen = gen - 1;
      else this.#fallback.delete(k);
    }
    // A prefix with nothing left in its ring nor in the fallback Map has nothing in the cache,
    // and its record goes.
    this.#last = undefined;
    for (const k of this.#fallback.keys()) {
      const s = idCounter(k) >= 0 ? this.#sender(k, false) : undefined;
      if (s !== undefined) s.pinned = gen;
    }
    this.#last = undefined;
    for (const [p, s] of this.#senders) if (s.head === s.tail && s.pinned !== gen) this.#senders.delete(p);
  }

  /** `complete` for the entry `open` returned. */
  close(e: DedupeEntry, reply: Uint8Array): void {
    const waiters = e.reply;
    e.reply = reply;
    const s = e.ring;
    if (s !== undefined) {
      e.ring = undefined;
      const q = e.seq;
      const i = s.idx(q);
      if (s.has(q) && s.refs[i] === e) {
        s.state[i] = DONE;
        if (reply.length <= ARENA_MAX_REPLY) {
          s.refs[i] = undefined;
          s.rgen[i] = this.#gen;
          s.roff[i] = this.#arena.put(reply);
          s.rlen[i] = reply.length;
        } else s.refs[i] = reply;
      }
    }
    if (Array.isArray(waiters)) for (const w of waiters) w(reply);
  }

  complete(id: string, reply: Uint8Array): void {
    const f = this.#fallback.get(id);
    if (f !== undefined) return this.close(f, reply);
    const c = idCounter(id);
    const s = c >= 0 ? this.#sender(id, false) : undefined;
    const q = s !== undefined ? s.find(c) : -1;
    if (q < 0) return;
    const e = s!.refs[s!.idx(q)];
    if (e instanceof DedupeEntry) this.close(e, reply);
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
    const s = e.ring;
    if (s !== undefined) {
      e.ring = undefined;
      const q = e.seq;
      const i = s.idx(q);
      // A sequence number is never reused: a slot still in the ring and not FREE is e's.
      if (s.has(q) && s.state[i] !== FREE) {
        if (s.gen[i] === this.#gen) this.#young--;
        s.free(q);
      }
    } else if (this.#fallback.get(e.id) === e) {
      this.#fallback.delete(e.id);
      if (e.gen === this.#gen) this.#young--;
    }
    const waiters = e.reply;
    if (Array.isArray(waiters)) {
      e.reply = undefined;
      for (const w of waiters) w(reply);
    }
  }
}
