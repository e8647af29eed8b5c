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

  /** True once the node may unfence; `syncedAt` is when a peer's table was last merged. */
  done(mono: number, syncedAt: number, ttlMs: number, askSync: () => void): boolean {
    if (this.#since === undefined) {
      this.#since = mono;
      askSync();
    }
    return syncedAt >= this.#since || mono - this.#since >= ttlMs;
  }
}
