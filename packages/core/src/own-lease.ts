// This node's own lease: it runs L = ttlMs - heartbeatMs from the monotonic send time of the
// newest own heartbeat that came back through NATS. Peers wait ttlMs from *receipt* of that
// heartbeat, so the holder's lease always ends first (the inequality is in lease.ts). Once it
// has lapsed, a later echo does not renew it by itself: Membership renews it only when the
// node has fenced and rejoined, because after a lapse it cannot tell what its peers took over.

/** Own heartbeats remembered by emission time until their echo (older ones can only lapse). */
const MAX_UNECHOED = 16;

export class OwnLease {
  readonly #ms: number;
  /** Monotonic send time of each own heartbeat not yet echoed, by its `at`. */
  readonly #unechoed = new Map<number, number>();
  #until = Number.NEGATIVE_INFINITY;
  /** The lease an echo after a lapse would give, taken up by renew() once the node rejoined. */
  #pending = Number.NEGATIVE_INFINITY;

  constructor(leaseMs: number) {
    this.#ms = leaseMs;
  }

  /** A heartbeat emitted at wall time `at` was sent at monotonic `mono`. */
  sent(at: number, mono: number): void {
    // Two beats in one ms share `at`: keep the earlier send time, the one that bounds the lease.
    if (this.#unechoed.has(at)) return;
    this.#unechoed.set(at, mono);
    if (this.#unechoed.size > MAX_UNECHOED) this.#unechoed.delete(this.#unechoed.keys().next().value!);
  }

  /**
   * Our heartbeat emitted at `at` came back. `extend`: the lease may be extended directly (it
   * is live and no rejoin is pending, or the node is still starting); otherwise the echo is
   * kept as the pending lease.
   */
  echoed(at: number, extend: boolean): void {
    const sent = this.#unechoed.get(at);
    if (sent === undefined) return;
    for (const k of this.#unechoed.keys()) if (k <= at) this.#unechoed.delete(k);
    const until = sent + this.#ms;
    if (extend) {
      if (until > this.#until) this.#until = until;
    } else if (until > this.#pending) this.#pending = until;
  }

  /** Whether the lease runs at monotonic time `mono`. */
  live(mono: number): boolean {
    return mono < this.#until;
  }

  /** Whether an echo since the lapse would give a live lease at `mono`. */
  pendingLive(mono: number): boolean {
    return mono < this.#pending;
  }

  /** Takes up the pending lease (the node rejoined). */
  renew(): void {
    this.#until = this.#pending;
    this.#pending = Number.NEGATIVE_INFINITY;
  }

  /** The monotonic end of the lease (-Infinity before the first echo). */
  get until(): number {
    return this.#until;
  }

  /** The monotonic send time of the heartbeat the lease runs from. */
  get sentAt(): number {
    return this.#until - this.#ms;
  }
}
