// Who may hold a partition's records, from this node's view of membership: live members;
// members that left gracefully and may still be handing off (tombstones cover the hand-off
// time, and the join-time sync brings them to nodes that joined since); and, asked with less
// patience, members whose lease expired recently — most crashed and answer "no responders" at
// once, but one that left before we heard its leave looks the same and may hold records.
import type { Clock, MembersEvent } from "@keyhold/core";

/** How many handoffTimeoutMs a member whose lease expired is still asked for records. */
export const PEER_RETENTION_FACTOR = 6;

/** A member that may hold a partition's records; an impatient one is given up on after one timeout. */
export interface Peer {
  readonly id: string;
  readonly patient: boolean;
}

export class PeerTracker {
  readonly #self: string;
  readonly #clock: Clock;
  readonly #retentionMs: number;
  readonly #expired = new Map<string, number>();
  #peers: Peer[] = [];

  constructor(params: { self: string; clock: Clock; handoffTimeoutMs: number }) {
    this.#self = params.self;
    this.#clock = params.clock;
    this.#retentionMs = params.handoffTimeoutMs * PEER_RETENTION_FACTOR;
  }

  /** The members to ask, as of the last update. */
  get peers(): readonly Peer[] {
    return this.#peers;
  }

  /** Takes in a membership change; `departed` are the graceful leavers still remembered. */
  update(e: MembersEvent, departed: readonly string[]): void {
    const now = this.#clock.now();
    const expired = this.#expired;
    for (const m of e.left) expired.set(m, now);
    for (const m of e.members) expired.delete(m);
    for (const [m, at] of expired) if (now - at > this.#retentionMs) expired.delete(m);
    const patient = new Set([...e.members, ...departed]);
    patient.delete(this.#self);
    this.#peers = [
      ...[...patient].map((id) => ({ id, patient: true })),
      ...[...expired.keys()]
        .filter((m) => !patient.has(m) && m !== this.#self)
        .map((id) => ({ id, patient: false })),
    ];
  }
}
