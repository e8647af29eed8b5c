// The two judgements a member makes about its own standing, kept apart from the message
// handling in membership.ts: which expired peers it may not drop yet (it cannot tell their
// silence from its own deafness), and when a node that fenced may take partitions back.
import type { LeaseTable } from "./lease.js";

/**
 * Peers whose lease ran out, but whose silence this node cannot yet tell from its own.
 * An expired peer is dropped only once our own heartbeat has come back emitted more than two
 * beats after the peer's last one: proof that our path through NATS worked when the peer
 * should have beaten again. Cut off from NATS, our last echo and every peer's last heartbeat
 * date from just before the cut, so all peers are held until our own lease runs out and we
 * fence; otherwise whichever node happened to beat last would outlive its peers' leases and
 * briefly own the whole ring. Held peers are judged again at our next echo. When a peer
 * really dies this costs nothing once ttlMs exceeds 3 beats, at most a round trip at 3 beats
 * (the advised ratio), and with a shorter TTL the drop waits for that echo.
 *
 * `ownSentAt`: the monotonic send time of our newest echoed heartbeat.
 */
export function doubtfulPeers(
  table: LeaseTable,
  self: string,
  ownSentAt: number,
  mono: number,
  heartbeatMs: number,
): Set<string> {
  const held = new Set<string>();
  const proof = 2 * heartbeatMs;
  for (const [id] of table.leases()) {
    const rx = table.receivedAt(id);
    if (id !== self && rx !== undefined && mono - rx > table.ttlMs && ownSentAt <= rx + proof) held.add(id);
  }
  return held;
}

/**
 * Whether a fenced node whose own heartbeats come back again may take partitions back. Not
 * at once: its peers' leases were swept while it was cut off, so until it hears from them it
 * is alone in its table and would own the whole ring next to the peers that already own it.
 * It waits for a lease table from a peer (asked for through `askSync` when the wait starts; a
 * reconnect asks too), or, when nobody answers (its server's routes may not be back yet), for
 * one TTL with its path working: by the lease rules, a peer silent that long is gone.
 * Heartbeats heard meanwhile are in the table when it does unfence.
 */
export class Rejoin {
  /** When (monotonic) our own heartbeat first came back since the lapse. */
  #since: number | undefined;
  /** Echo mode: the proof that nobody dropped this node across the fence (LeaseWitness). */
  readonly witness: LeaseWitness | undefined;

  /** `view`: the members at the lapse; `echo`: echo mode (its peers' rule applies). */
  constructor(view: readonly string[], self: string, table: LeaseTable, echo: boolean) {
    this.witness = echo ? new LeaseWitness(view, self, table) : undefined;
  }

  /** True once the node may unfence; `syncedAt` is when a peer's table was last merged. */
  done(mono: number, syncedAt: number, ttlMs: number, askSync: () => void): boolean {
    if (this.#since === undefined) {
      this.#since = mono;
      askSync();
    }
    return syncedAt >= this.#since || mono - this.#since >= ttlMs;
  }
}

/**
 * Echo mode's part of the proof that no peer dropped this node across a fence ("A fence too
 * short for a take-over", docs/concepts/safety.md). An echo shows that our heartbeat crossed
 * NATS, not that a peer on the far side of a split got it. A peer of the view at the lapse that
 * has gone silent may be such a peer, and may have dropped us: the proof is void once our own
 * heartbeat, sent more than two beats after that peer's last one, has come back while the peer
 * is still unheard (the silence test of doubtfulPeers). A peer heard again before that was
 * only unheard by us (our own stall). JetStream mode needs no such rule: a peer drops us only
 * after a leader read, which sees every heartbeat the stream acknowledged before it.
 */
export class LeaseWitness {
  /** Peers of the view at the lapse -> the monotonic receipt of their newest heartbeat seen. */
  readonly #rx = new Map<string, number>();
  #void = false;

  constructor(view: readonly string[], self: string, table: LeaseTable) {
    for (const id of view)
      if (id !== self) this.#rx.set(id, table.receivedAt(id) ?? Number.NEGATIVE_INFINITY);
  }

  /** Re-judged at every recompute while fenced; `ownAckSent`: our newest acknowledged send. */
  watch(table: LeaseTable, mono: number, ownAckSent: number, heartbeatMs: number): void {
    for (const [id, before] of this.#rx) {
      const rx = table.receivedAt(id) ?? before;
      this.#rx.set(id, Math.max(rx, before));
      const silent = mono - Math.max(rx, before) > table.ttlMs;
      if (silent && ownAckSent > Math.max(rx, before) + 2 * heartbeatMs) this.#void = true;
    }
  }

  /** Whether every peer of the view at the lapse was heard again or not yet proven silent. */
  get kept(): boolean {
    return !this.#void;
  }
}
