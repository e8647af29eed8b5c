// Sending this node's heartbeats, and the own lease they renew when they come back.
import type { MembershipParams, MembershipStats } from "./membership-types.js";
import { leaseMs } from "./options.js";
import { OwnLease } from "./own-lease.js";
import { encode } from "./wire.js";

export class Heartbeats {
  /** This node's own lease: L from the monotonic send time of its newest echoed heartbeat. */
  readonly lease: OwnLease;
  readonly #p: MembershipParams;
  readonly #subject: string;
  readonly #stats: MembershipStats;
  readonly #next: () => void;
  #timer: unknown;

  /** `next` runs at every period (Membership beats from it). */
  constructor(p: MembershipParams, subject: string, stats: MembershipStats, next: () => void) {
    this.#p = p;
    this.#subject = subject;
    this.#stats = stats;
    this.#next = next;
    this.lease = new OwnLease(leaseMs(p.config));
  }

  /** Publishes one heartbeat now and schedules the next period. */
  beat(): void {
    const p = this.#p;
    p.clock.clearTimeout(this.#timer);
    const at = p.clock.now();
    this.lease.sent(at, p.clock.monoNow());
    p.transport.publish(this.#subject, encode({ v: 1, k: "hb", id: p.id, at, cfg: p.config }));
    this.#stats.heartbeatsSent++;
    this.#timer = p.clock.setTimeout(this.#next, p.config.heartbeatMs);
  }

  stop(): void {
    this.#p.clock.clearTimeout(this.#timer);
  }
}
