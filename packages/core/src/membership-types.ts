// What Membership is given and what it counts.
import type { Clock } from "./clock.js";
import type { Logger } from "./logger.js";
import type { ClusterConfig } from "./options.js";
import type { Transport } from "./transport.js";

/** Counters of what membership saw and did. */
export interface MembershipStats {
  heartbeatsSent: number;
  heartbeatsAccepted: number;
  /** Dropped: not msgpack, wrong shape, bad id or time. */
  malformed: number;
  /** Dropped: emitted more than skewMs in the future. */
  rejectedFuture: number;
  /** Dropped: older than the newest heartbeat, already expired, or from before a leave. */
  rejectedStale: number;
  /** Dropped: sent by a node whose cluster config differs from ours. */
  configMismatch: number;
  leavesSeen: number;
  syncsServed: number;
  syncsMerged: number;
}

export function emptyStats(): MembershipStats {
  return {
    heartbeatsSent: 0,
    heartbeatsAccepted: 0,
    malformed: 0,
    rejectedFuture: 0,
    rejectedStale: 0,
    configMismatch: 0,
    leavesSeen: 0,
    syncsServed: 0,
    syncsMerged: 0,
  };
}

export interface MembershipParams {
  readonly transport: Transport;
  readonly cluster: string;
  readonly id: string;
  readonly config: ClusterConfig;
  readonly observer: boolean;
  /** How long graceful leaves are remembered (at least ttlMs + skewMs). */
  readonly tombstoneMs?: number | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called synchronously whenever the live set or the fenced flag changes. */
  readonly onChange: (members: readonly string[], fenced: boolean) => void;
}
