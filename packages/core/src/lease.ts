// The lease table: who is live, from heartbeats stamped with their sender's wall clock and
// timed on the receiver's monotonic clock. Rules: a heartbeat emitted more than skewMs in the
// future, or more than ttlMs in the past, is rejected (wall clocks, as in the reference); the
// newest heartbeat per member wins (by emission time); a member is live while
// monoNow - receivedAt(its newest accepted heartbeat) <= ttlMs, on this node's monotonic clock,
// so wall-clock steps and skew never shorten or stretch a lease, only clock drift does. A
// graceful leave is kept as a tombstone so that heartbeats already in flight cannot bring the
// member back.
//
// The safety rule these numbers serve (the holder side is Membership.leaseRemainingMs): a
// holder acts only while monoNow < sentAt + L, sentAt the monotonic send time of its newest
// heartbeat that came back, L = ttlMs - heartbeatMs; a peer takes over only once T = ttlMs has
// passed on its clock since it received that heartbeat, and receipt is after sending. With
// drift ρ and a check-to-effect delay P, no two owners overlap while L·(1+ρ) + P < T·(1−ρ).
// Defaults (2000 / 6000): 4000·1.001 + P < 6000·0.999, so P < 1990 ms (options.ts refuses a
// config that leaves less than MIN_EFFECT_BUDGET_MS).

/** What the table did with a heartbeat. */
export type LeaseVerdict = "accepted" | "stale" | "future" | "expired" | "left";

export class LeaseTable {
  readonly ttlMs: number;
  readonly skewMs: number;
  /** How long a graceful leave is remembered; at least ttlMs + skewMs. */
  readonly tombstoneMs: number;
  /** id -> [emitted (sender's wall clock), received (our monotonic clock)]. */
  readonly #leases = new Map<string, [number, number]>();
  readonly #left = new Map<string, number>();

  constructor(ttlMs: number, skewMs: number, tombstoneMs = ttlMs + skewMs) {
    this.ttlMs = ttlMs;
    this.skewMs = skewMs;
    this.tombstoneMs = Math.max(tombstoneMs, ttlMs + skewMs);
  }

  /**
   * Applies a heartbeat of `id` emitted at `at`, received at wall time `now` and monotonic
   * time `mono` (tests with one clock may leave it out).
   */
  observe(id: string, at: number, now: number, mono = now): LeaseVerdict {
    if (at > now + this.skewMs) return "future";
    if (now - at > this.ttlMs) return "expired";
    const leftAt = this.#left.get(id);
    if (leftAt !== undefined && at <= leftAt) return "left";
    const current = this.#leases.get(id);
    if (current !== undefined && at <= current[0]) return "stale";
    this.#leases.set(id, [at, mono]);
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
    if (current !== undefined && current[0] > at) return false;
    const prev = this.#left.get(id);
    if (prev === undefined || at > prev) this.#left.set(id, at);
    return this.#leases.delete(id);
  }

  /**
   * A heartbeat of `id` emitted at `at` is known to exist (read from the heartbeat stream,
   * takeover.ts) that is not the one held: it renews the lease as received at `mono`, whatever
   * its stamp (a sender's clock may have been stepped back). Only a lease in the table is renewed.
   */
  refresh(id: string, at: number, mono: number): void {
    if (this.#leases.has(id)) this.#leases.set(id, [at, mono]);
  }

  /** Whether `id` holds a lease that has not expired at monotonic time `mono`. */
  isLive(id: string, mono: number): boolean {
    const l = this.#leases.get(id);
    return l !== undefined && mono - l[1] <= this.ttlMs;
  }

  /** Live member ids at monotonic time `mono`, sorted. */
  live(mono: number): string[] {
    const out: string[] = [];
    for (const [id, l] of this.#leases) if (mono - l[1] <= this.ttlMs) out.push(id);
    return out.sort();
  }

  /**
   * Drops leases expired at monotonic time `mono` and tombstones old enough (by wall time
   * `now`) that no heartbeat they guard against could still be accepted. Expired leases of the
   * ids in `keep` stay in the table (though not live). Returns the ids whose leases were dropped.
   */
  sweep(now: number, keep?: ReadonlySet<string>, mono = now): string[] {
    const dropped: string[] = [];
    for (const [id, l] of this.#leases) {
      if (mono - l[1] > this.ttlMs && !keep?.has(id)) {
        this.#leases.delete(id);
        dropped.push(id);
      }
    }
    for (const [id, at] of this.#left) if (now - at > this.tombstoneMs) this.#left.delete(id);
    return dropped;
  }

  /**
   * The first monotonic moment some lease expires, or undefined when there is none; `except`
   * is left out.
   */
  nextExpiry(except?: ReadonlySet<string>): number | undefined {
    let min: number | undefined;
    for (const [id, l] of this.#leases) if (!except?.has(id) && (min === undefined || l[1] < min)) min = l[1];
    return min === undefined ? undefined : min + this.ttlMs + 1;
  }

  /** When the newest heartbeat of `id` was emitted, or undefined when it holds no lease. */
  emittedAt(id: string): number | undefined {
    return this.#leases.get(id)?.[0];
  }

  /** When (our monotonic clock) the newest heartbeat of `id` was received, or undefined. */
  receivedAt(id: string): number | undefined {
    return this.#leases.get(id)?.[1];
  }

  /** [id, emitted] of every lease, for a sync reply. */
  leases(): [string, number][] {
    return [...this.#leases].map(([id, l]) => [id, l[0]]);
  }

  /** [id, left at] of every tombstone, for a sync reply. */
  tombstones(): [string, number][] {
    return [...this.#left];
  }

  /** Sweeps (keeping `keep`), then the ids of tombstones not in `live`, sorted. */
  departed(now: number, keep: ReadonlySet<string>, mono: number, live: readonly string[]): string[] {
    this.sweep(now, keep, mono);
    const skip = new Set(live);
    return this.tombstones()
      .map(([id]) => id)
      .filter((id) => !skip.has(id))
      .sort();
  }

  get size(): number {
    return this.#leases.size;
  }
}
