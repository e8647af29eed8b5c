// Sending this node's heartbeats, and the own lease they renew: in echo mode when a heartbeat
// comes back through NATS (Membership sees the echo), in jetstream mode when the heartbeat
// stream acknowledges storing it (here). Either way the lease runs L = ttlMs - heartbeatMs from
// the monotonic send time of the heartbeat that renewed it.
import { withTimeout } from "./clock.js";
import { StartTimeoutError } from "./errors.js";
import type { LeaseStats, MembershipParams, MembershipStats } from "./membership-types.js";
import { leaseMs } from "./options.js";
import { holdMs, OwnLease } from "./own-lease.js";
import { encode, memberHeartbeatSubject } from "./wire.js";

export class Heartbeats {
  /** This node's own lease. */
  readonly lease: OwnLease;
  readonly #p: MembershipParams;
  readonly #subject: string;
  readonly #stats: MembershipStats;
  readonly #leaseStats: LeaseStats;
  readonly #next: () => void;
  readonly #acked: (at: number) => void;
  /** This node's admission front while it joins step by step (join-steps.ts). */
  front: number | undefined;
  #timer: unknown;
  #stopped = false;
  #echoSeen = false;
  #seen: (() => void) | undefined;

  /**
   * `next` runs at every period (Membership beats from it); `acked(at)` when the stream
   * acknowledged our heartbeat emitted at `at` (jetstream mode only).
   */
  constructor(
    p: MembershipParams,
    subject: string,
    stats: MembershipStats,
    leaseStats: LeaseStats,
    next: () => void,
    acked: (at: number) => void,
  ) {
    this.#p = p;
    this.#subject = p.stream ? memberHeartbeatSubject(p.cluster, p.id) : subject;
    this.#stats = stats;
    this.#leaseStats = leaseStats;
    this.#next = next;
    this.#acked = acked;
    this.lease = new OwnLease(leaseMs(p.config), holdMs(p.config));
  }

  /** Publishes one heartbeat now and schedules the next period. */
  beat(): void {
    const p = this.#p;
    p.clock.clearTimeout(this.#timer);
    const at = p.clock.now();
    this.lease.sent(at, p.clock.monoNow());
    const front = this.front;
    const data = encode({
      v: 1,
      k: "hb",
      id: p.id,
      at,
      cfg: p.config,
      ...(front !== undefined ? { adm: front } : {}),
    });
    if (p.stream) {
      // An acknowledgement later than the lease it could extend is useless: wait no longer.
      p.stream.publish(this.#subject, data, leaseMs(p.config)).then(
        () => {
          this.#leaseStats.heartbeatsAcked++;
          if (this.#stopped) return;
          this.#acked(at);
          this.#checkSeen();
        },
        (err: unknown) => {
          this.#leaseStats.heartbeatAckFailures++;
          if (!this.#stopped) {
            p.logger.debug(`node ${p.id}: heartbeat not acknowledged by the stream: ${String(err)}`);
          }
        },
      );
    } else p.transport.publish(this.#subject, data);
    this.#stats.heartbeatsSent++;
    this.#timer = p.clock.setTimeout(this.#next, p.config.heartbeatMs);
  }

  /** Our own heartbeat came back through NATS. */
  echoed(): void {
    this.#echoSeen = true;
    this.#checkSeen();
  }

  /**
   * Sends the first heartbeat (through `next`) and waits until it came back through NATS and,
   * in jetstream mode, the stream acknowledged one: StartTimeoutError after `timeoutMs`.
   */
  async firstBeat(timeoutMs: number): Promise<void> {
    const seen = new Promise<void>((resolve) => {
      this.#seen = resolve;
    });
    this.#next();
    const p = this.#p;
    const what = p.stream
      ? "come back through NATS and be acknowledged by the heartbeat stream"
      : "come back through NATS";
    const late = () =>
      new StartTimeoutError(`Node ${p.id} did not see its own heartbeat ${what} within ${timeoutMs} ms`);
    try {
      await withTimeout(p.clock, seen, timeoutMs, late);
    } finally {
      this.#seen = undefined;
    }
  }

  #checkSeen(): void {
    if (this.#echoSeen && (!this.#p.stream || Number.isFinite(this.lease.until))) this.#seen?.();
  }

  stop(): void {
    this.#stopped = true;
    this.#p.clock.clearTimeout(this.#timer);
  }
}
