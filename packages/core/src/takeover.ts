// The check a member makes in jetstream mode before it takes over a silent peer: its lease ran
// out here, but did the peer perhaps renew its own lease through the stream with heartbeats we
// never heard (a one-way break, a route that drops our side)? One read answered by the stream
// leader tells: the peer's newest stored heartbeat. Why that suffices: a peer extends its lease
// only with an acknowledgement that arrives while the lease is still live. If, when the leader
// answers, nothing newer than the heartbeat we timed out is stored, then any later
// acknowledgement comes after the read, when the lease we timed (sent before we received it,
// L < T) has lapsed: it cannot extend it. If another heartbeat is stored (newer, or stamped
// earlier by a wall clock stepped back), we take it as received when the answer came (it was
// sent before), and wait T again.
import type { HeartbeatStream } from "./heartbeat-stream.js";
import type { LeaseTable } from "./lease.js";
import type { LeaseStats, MembershipParams, MembershipStats } from "./membership-types.js";
import { decode, isMalformed, MAX_SMALL_MESSAGE_BYTES, memberHeartbeatSubject } from "./wire.js";

/** What the confirming read found. */
export type TakeoverVerdict =
  /** The newest stored heartbeat is the one we timed out, or none is stored: drop the peer. */
  | { readonly kind: "gone" }
  /** The peer stored another heartbeat, emitted at `at`: treat it as received now. */
  | { readonly kind: "newer"; readonly at: number };

export interface TakeoverParams {
  readonly stream: HeartbeatStream;
  readonly subjectOf: (id: string) => string;
  readonly timeoutMs: number;
  readonly stats: MembershipStats;
  readonly leaseStats: LeaseStats;
  /** Called when a read ended with a verdict (Membership recomputes). */
  readonly onVerdict: (id: string, verdict: TakeoverVerdict) => void;
}

export class TakeoverCheck {
  readonly #p: TakeoverParams;
  /** id -> the `at` of the heartbeat confirmed to be the peer's newest stored one (or older). */
  readonly #confirmed = new Map<string, number>();
  readonly #inFlight = new Set<string>();

  constructor(p: TakeoverParams) {
    this.#p = p;
  }

  /**
   * Whether peer `id`, whose newest heartbeat here was emitted at `at` and has expired, may be
   * dropped: only once a leader read confirmed it. Starts that read if none is running.
   */
  mayDrop(id: string, at: number): boolean {
    const c = this.#confirmed.get(id);
    if (c !== undefined && c >= at) return true;
    if (!this.#inFlight.has(id)) void this.#read(id, at);
    return false;
  }

  /** Forgets peers no longer in the table. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.#confirmed.keys()) if (!ids.has(id)) this.#confirmed.delete(id);
  }

  async #read(id: string, at: number): Promise<void> {
    const p = this.#p;
    this.#inFlight.add(id);
    p.leaseStats.takeoverReads++;
    let data: Uint8Array | undefined;
    try {
      data = await p.stream.last(p.subjectOf(id), p.timeoutMs);
    } catch {
      // No leader (an election, a split without quorum): the peer stays; asked again later.
      p.leaseStats.takeoverReadFailures++;
      this.#inFlight.delete(id);
      return;
    }
    this.#inFlight.delete(id);
    if (data === undefined) {
      this.#confirmed.set(id, at);
      p.onVerdict(id, { kind: "gone" });
      return;
    }
    const msg = decode(data, MAX_SMALL_MESSAGE_BYTES);
    if (isMalformed(msg) || msg.k !== "hb" || msg.id !== id) {
      // Someone wrote junk over the peer's heartbeat: we cannot tell; keep the peer.
      p.stats.malformed++;
      return;
    }
    // Only the very heartbeat we timed out proves silence. Any other one (newer, or stamped
    // earlier by a clock stepped back) was stored without our timing it: take it as heard now.
    if (msg.at === at) {
      this.#confirmed.set(id, at);
      p.onVerdict(id, { kind: "gone" });
    } else {
      p.leaseStats.takeoverRefused++;
      p.onVerdict(id, { kind: "newer", at: msg.at });
    }
  }
}

/**
 * Adds to `held` every expired peer of `table` (not `self`) whose silence the stream leader has
 * not confirmed yet, starting the reads that will.
 */
export function holdUnconfirmed(
  check: TakeoverCheck,
  table: LeaseTable,
  self: string,
  mono: number,
  held: Set<string>,
): Set<string> {
  for (const [id, at] of table.leases()) {
    const rx = table.receivedAt(id);
    if (id === self || held.has(id) || rx === undefined || mono - rx <= table.ttlMs) continue;
    if (!check.mayDrop(id, at)) held.add(id);
  }
  return held;
}

/** The check of a jetstream-mode member: a "newer" verdict renews the peer in `table`. */
export function takeoverCheck(
  p: MembershipParams,
  stream: HeartbeatStream,
  counters: { readonly stats: MembershipStats; readonly leaseStats: LeaseStats },
  table: LeaseTable,
  changed: () => void,
): TakeoverCheck {
  const { stats, leaseStats } = counters;
  return new TakeoverCheck({
    stream,
    subjectOf: (id) => memberHeartbeatSubject(p.cluster, id),
    timeoutMs: Math.max(1000, p.config.heartbeatMs),
    stats,
    leaseStats,
    onVerdict: (id, v) => {
      if (v.kind === "newer") table.refresh(id, v.at, p.clock.monoNow());
      changed();
    },
  });
}
