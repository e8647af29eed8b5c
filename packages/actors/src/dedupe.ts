// Remembers recently handled ask ids with their encoded replies, so a retried ask (same id) is
// answered again rather than applied twice. Bounded by age and by count, oldest first.

interface Entry {
  readonly id: string;
  readonly at: number;
  /** The encoded reply, or the waiters of an ask still being handled. */
  reply: Uint8Array | ((reply: Uint8Array) => void)[];
}

export class DedupeCache {
  readonly #windowMs: number;
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();

  constructor(windowMs: number, maxEntries: number) {
    this.#windowMs = windowMs;
    this.#max = maxEntries;
  }

  get enabled(): boolean {
    return this.#windowMs > 0 && this.#max > 0;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Looks an id up. `undefined`: never seen, and now recorded as in progress (call `complete`).
   * A Uint8Array: the earlier reply. A promise: the first attempt is still running.
   */
  begin(id: string, now: number): Uint8Array | Promise<Uint8Array> | undefined {
    const e = this.#entries.get(id);
    if (e && now - e.at <= this.#windowMs) {
      if (e.reply instanceof Uint8Array) return e.reply;
      const waiters = e.reply;
      return new Promise((resolve) => waiters.push(resolve));
    }
    this.#evict(now);
    this.#entries.set(id, { id, at: now, reply: [] });
    return undefined;
  }

  complete(id: string, reply: Uint8Array): void {
    const e = this.#entries.get(id);
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
    const e = this.#entries.get(id);
    if (!e) return;
    this.#entries.delete(id);
    if (Array.isArray(e.reply)) for (const w of e.reply) w(reply);
  }

  #evict(now: number): void {
    // Map iteration is insertion order, so the oldest entries come first. Asks still being
    // handled are skipped, not waited for, and the scan is bounded so that a hung handler
    // costs a little memory, never unbounded growth or a long scan.
    let scanned = 0;
    for (const e of this.#entries.values()) {
      if (this.#entries.size < this.#max && now - e.at <= this.#windowMs) break;
      if (++scanned > 256) break;
      if (Array.isArray(e.reply)) continue;
      this.#entries.delete(e.id);
    }
  }
}
