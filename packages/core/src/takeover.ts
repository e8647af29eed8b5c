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
//
// Liveness: a peer held here for want of that read is, at every beat, either confirmed gone or
// back (a heartbeat heard, or a newer one stored) as soon as one read is answered; see
// docs/concepts/safety.md, "How long a silent peer is held". Reads that keep failing while our
// own lease is renewed (say, the NATS user may not read the stream) keep it held for good: that
// is warned about, since its partitions wait meanwhile.
import { type HeartbeatStream, heartbeatStreamName } from "./heartbeat-stream.js";
import type { LeaseTable } from "./lease.js";
import type { Logger } from "./logger.js";
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
  /** Where a peer held because its reads keep failing is reported (once until one answers). */
  readonly logger?: Logger | undefined;
  /** This node's id and the read's API subject, for that report. */
  readonly self?: string | undefined;
  readonly api?: string | undefined;
}

/** Failed reads of one peer in a row after which the peer's wait is reported. */
export const HELD_READ_FAILURES_REPORTED = 3;

export class TakeoverCheck {
  readonly #p: TakeoverParams;
  /** id -> the `at` of the heartbeat confirmed to be the peer's newest stored one (or older). */
  readonly #confirmed = new Map<string, number>();
  readonly #inFlight = new Set<string>();
  /**
   * id -> what an unreadable (junk) answer held, and the `at` it was judged for: the same junk
   * for the same timed heartbeat a read later tells that nothing was stored meanwhile.
   */
  readonly #junk = new Map<string, { readonly data: Uint8Array; readonly at: number }>();
  /** id -> failed reads in a row (reported once at HELD_READ_FAILURES_REPORTED). */
  readonly #failures = new Map<string, number>();

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
    for (const m of [this.#confirmed, this.#junk, this.#failures])
      for (const id of m.keys()) if (!ids.has(id)) m.delete(id);
  }

  #confirm(id: string, at: number): void {
    this.#confirmed.set(id, at);
    this.#junk.delete(id);
    this.#p.onVerdict(id, { kind: "gone" });
  }

  async #read(id: string, at: number): Promise<void> {
    const p = this.#p;
    this.#inFlight.add(id);
    p.leaseStats.takeoverReads++;
    let data: Uint8Array | undefined;
    try {
      data = await p.stream.last(p.subjectOf(id), p.timeoutMs);
    } catch (err) {
      // No leader (an election, a split without quorum): the peer stays; asked again at our
      // next beat. Without a leader our own lease lapses too, and a fenced node holds nobody.
      p.leaseStats.takeoverReadFailures++;
      this.#inFlight.delete(id);
      const n = (this.#failures.get(id) ?? 0) + 1;
      this.#failures.set(id, n);
      if (n === HELD_READ_FAILURES_REPORTED)
        p.logger?.warn(
          `node ${p.self}: peer ${id} stays a member although its lease expired here: ${n} reads of its newest stored heartbeat (${p.api}) failed in a row (${String(err)}); its partitions wait until one is answered`,
        );
      return;
    }
    this.#inFlight.delete(id);
    this.#failures.delete(id);
    if (data === undefined) return this.#confirm(id, at);
    const msg = decode(data, MAX_SMALL_MESSAGE_BYTES);
    if (isMalformed(msg) || msg.k !== "hb" || msg.id !== id) {
      // Junk over the peer's heartbeat: it was stored after the peer's newest heartbeat, which
      // we cannot see. Taken like a newer heartbeat (heard now: wait T again); the very same
      // junk a read later means nothing was stored meanwhile, so the peer renewed nothing.
      p.stats.malformed++;
      const before = this.#junk.get(id);
      if (before !== undefined && before.at === at && sameBytes(before.data, data))
        return this.#confirm(id, at);
      this.#junk.set(id, { data: data.slice(), at });
      p.leaseStats.takeoverRefused++;
      p.onVerdict(id, { kind: "newer", at });
      return;
    }
    this.#junk.delete(id);
    // Only the very heartbeat we timed out proves silence. Any other one (newer, or stamped
    // earlier by a clock stepped back) was stored without our timing it: take it as heard now.
    if (msg.at === at) this.#confirm(id, at);
    else {
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
  const leases = table.leases();
  check.retain(new Set(leases.map(([id]) => id)));
  for (const [id, at] of leases) {
    const rx = table.receivedAt(id);
    if (id === self || held.has(id) || rx === undefined || mono - rx <= table.ttlMs) continue;
    if (!check.mayDrop(id, at)) held.add(id);
  }
  return held;
}

/**
 * The peers of `table` (not `self`) whose leases expired, kept in the table while this node is
 * fenced (jetstream mode): fenced, it cannot read the stream, and had it swept them, a rejoin
 * through a peer as fenced as itself would bring back a view without them, whose ring takes over
 * their partitions at once, although one of them may have kept renewing its lease through the
 * stream on its side of the split (its heartbeats not heard here since). Kept, they are judged
 * by a leader read like any expired peer once this node serves again (holdUnconfirmed).
 */
export function expiredPeers(table: LeaseTable, self: string, mono: number): Set<string> {
  const out = new Set<string>();
  for (const [id] of table.leases()) {
    const rx = table.receivedAt(id);
    if (id !== self && rx !== undefined && mono - rx > table.ttlMs) out.add(id);
  }
  return out;
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
    logger: p.logger,
    self: p.id,
    api: `$JS.API.STREAM.MSG.GET.${heartbeatStreamName(p.cluster)}`,
    onVerdict: (id, v) => {
      if (v.kind === "newer") table.refresh(id, v.at, p.clock.monoNow());
      changed();
    },
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
