// This node's own lease: it runs L = ttlMs - heartbeatMs from the monotonic send time of the
// newest own heartbeat that came back through NATS. Peers wait ttlMs from *receipt* of that
// heartbeat, so the holder's lease always ends first (the inequality is in lease.ts). Once it
// has lapsed, a later echo does not renew it by itself: Membership renews it only when the
// node has fenced and rejoined, because after a lapse it cannot tell what its peers took over.
//
// The hold chain ("A fence too short for a take-over", docs/concepts/safety.md): a heartbeat
// sent at s and acknowledged (echoed, or stored by the stream) keeps every peer from dropping
// this node until s + H (holdMs). If every acknowledgement came within H of the send of the one
// before it, no peer can have dropped the node in between, lapse or not; renew() reports
// whether that held since the last renewal.
import { MAX_CLOCK_DRIFT, MIN_EFFECT_BUDGET_MS } from "./options.js";

/**
 * H: how long after its send an acknowledged heartbeat keeps every peer from dropping this node.
 * A peer waits T = ttlMs on its own clock from receiving it (after its send); measured on ours,
 * that is at least T·(1−ρ)/(1+ρ), less a margin for the check-to-effect delay and delivery skew.
 */
export function holdMs(config: { readonly heartbeatMs: number; readonly ttlMs: number }): number {
  const margin = Math.max(MIN_EFFECT_BUDGET_MS, config.heartbeatMs / 10);
  return (config.ttlMs * (1 - MAX_CLOCK_DRIFT)) / (1 + MAX_CLOCK_DRIFT) - margin;
}

/** Own heartbeats remembered by emission time until their echo (older ones can only lapse). */
const MAX_UNECHOED = 16;

export class OwnLease {
  readonly #ms: number;
  /** Monotonic send time of each own heartbeat not yet echoed, by its `at`. */
  readonly #unechoed = new Map<number, number>();
  #until = Number.NEGATIVE_INFINITY;
  /** The lease an echo after a lapse would give, taken up by renew() once the node rejoined. */
  #pending = Number.NEGATIVE_INFINITY;
  /** H (holdMs); -Infinity breaks every chain (no proof is ever claimed). */
  readonly #hold: number;
  /** Monotonic send time of the newest acknowledged own heartbeat (extending or pending). */
  #ackSent = Number.NEGATIVE_INFINITY;
  /** False once an acknowledgement came later than H after the previous one's send. */
  #chain = true;

  constructor(leaseMs: number, hold = Number.NEGATIVE_INFINITY) {
    this.#ms = leaseMs;
    this.#hold = hold;
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
   * kept as the pending lease. `mono`: when the acknowledgement is handled (a late one breaks
   * the hold chain).
   */
  echoed(at: number, extend: boolean, mono: number): void {
    const sent = this.#unechoed.get(at);
    if (sent === undefined) return;
    // Handled late (a stalled loop, a slow path): a peer may have timed us out meanwhile.
    if (Number.isFinite(this.#ackSent) && !(mono - this.#ackSent <= this.#hold)) this.#chain = false;
    if (sent > this.#ackSent) this.#ackSent = sent;
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

  /**
   * Takes up the pending lease (the node rejoined). True when the hold chain held since the last
   * renewal: no peer can have dropped this node meanwhile (judged by acknowledgements alone).
   */
  renew(): boolean {
    this.#until = this.#pending;
    this.#pending = Number.NEGATIVE_INFINITY;
    const kept = this.#chain;
    this.#chain = true;
    return kept;
  }

  /** The monotonic send time of the newest acknowledged own heartbeat, lapsed or not. */
  get ackSentAt(): number {
    return this.#ackSent;
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
