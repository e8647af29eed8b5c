// The lease table: who is live, from heartbeats stamped with their sender's wall clock.
// Rules (from the reference): live while now - emitted <= ttlMs; a heartbeat emitted more than
// skewMs in the future is rejected; the newest heartbeat per member wins. A graceful leave is
// kept as a tombstone so that heartbeats already in flight cannot bring the member back.

/** What the table did with a heartbeat. */
export type LeaseVerdict = "accepted" | "stale" | "future" | "expired" | "left";

export class LeaseTable {
  readonly ttlMs: number;
  readonly skewMs: number;
  /** How long a graceful leave is remembered; at least ttlMs + skewMs. */
  readonly tombstoneMs: number;
  readonly #leases = new Map<string, number>();
  readonly #left = new Map<string, number>();

  constructor(ttlMs: number, skewMs: number, tombstoneMs = ttlMs + skewMs) {
    this.ttlMs = ttlMs;
    this.skewMs = skewMs;
    this.tombstoneMs = Math.max(tombstoneMs, ttlMs + skewMs);
  }

  /** Applies a heartbeat of `id` emitted at `at`, received at `now`. */
  observe(id: string, at: number, now: number): LeaseVerdict {
    if (at > now + this.skewMs) return "future";
    if (now - at > this.ttlMs) return "expired";
    const leftAt = this.#left.get(id);
    if (leftAt !== undefined && at <= leftAt) return "left";
    const current = this.#leases.get(id);
    if (current !== undefined && at <= current) return "stale";
    this.#leases.set(id, at);
    return "accepted";
  }

  /**
   * Applies a graceful leave of `id` at `at`. A leave older than the member's newest heartbeat
   * comes from an earlier incarnation (a restart with the same id) and is ignored.
   * Returns whether a lease was removed.
   */
  leave(id: string, at: number, now: number): boolean {
    if (at > now + this.skewMs) return false;
    const current = this.#leases.get(id);
    if (current !== undefined && current > at) return false;
    const prev = this.#left.get(id);
    if (prev === undefined || at > prev) this.#left.set(id, at);
    return this.#leases.delete(id);
  }

  /** Whether `id` holds a lease that has not expired at `now`. */
  isLive(id: string, now: number): boolean {
    const at = this.#leases.get(id);
    return at !== undefined && now - at <= this.ttlMs;
  }

  /** Live member ids at `now`, sorted. */
  live(now: number): string[] {
    const out: string[] = [];
    for (const [id, at] of this.#leases) if (now - at <= this.ttlMs) out.push(id);
    return out.sort();
  }

  /**
   * Drops leases expired at `now` and tombstones old enough that no heartbeat they guard
   * against could still be accepted. Expired leases of the ids in `keep` stay in the table
   * (though not live). Returns the ids whose leases were dropped.
   */
  sweep(now: number, keep?: ReadonlySet<string>): string[] {
    const dropped: string[] = [];
    for (const [id, at] of this.#leases) {
      if (now - at > this.ttlMs && !keep?.has(id)) {
        this.#leases.delete(id);
        dropped.push(id);
      }
    }
    for (const [id, at] of this.#left) if (now - at > this.tombstoneMs) this.#left.delete(id);
    return dropped;
  }

  /** The first moment some lease expires, or undefined when there is none; `except` is left out. */
  nextExpiry(except?: ReadonlySet<string>): number | undefined {
    let min: number | undefined;
    for (const [id, at] of this.#leases) if (!except?.has(id) && (min === undefined || at < min)) min = at;
    return min === undefined ? undefined : min + this.ttlMs + 1;
  }

  /** When the newest heartbeat of `id` was emitted, or undefined when it holds no lease. */
  emittedAt(id: string): number | undefined {
    return this.#leases.get(id);
  }

  /** [id, emitted] of every lease, for a sync reply. */
  leases(): [string, number][] {
    return [...this.#leases];
  }

  /** [id, left at] of every tombstone, for a sync reply. */
  tombstones(): [string, number][] {
    return [...this.#left];
  }

  get size(): number {
    return this.#leases.size;
  }
}
