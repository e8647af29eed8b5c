// Remembers recently handled ask ids with their encoded replies, so a retried ask (same id) is
// answered again rather than applied twice. Bounded by age and by count, oldest first; an ask
// still in progress is kept at most windowMs and a half.

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

  #get(id: string): Entry | undefined {
    return this.#young.get(id) ?? this.#old.get(id);
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
    const e = this.#get(id);
    if (e && now - e.at <= this.#windowMs) {
      if (e.reply instanceof Uint8Array) return e.reply;
      const waiters = e.reply ?? [];
      e.reply = waiters;
      return new Promise((resolve) => waiters.push(resolve));
    }
    if (now - this.#since >= this.#windowMs / 2 || this.#young.size >= this.#max / 2) {
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
    }
    const fresh = new DedupeEntry(id, now, undefined);
    this.#young.set(id, fresh);
    return fresh;
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
   * Forgets an id: the ask was redirected, not handled, so a retry must run. Duplicates that
   * were waiting on it get `reply` (the same redirect) and retry too.
   */
  forget(id: string, reply: Uint8Array): void {
    const e = this.#get(id);
    if (!e) return;
    this.#young.delete(id);
    this.#old.delete(id);
    if (Array.isArray(e.reply)) for (const w of e.reply) w(reply);
  }
}
