// What Membership is given and what it counts.
import type { Clock } from "./clock.js";
import type { HeartbeatStream } from "./heartbeat-stream.js";
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

/** Counters of the jetstream lease mode (all 0 in echo mode). */
export interface LeaseStats {
  /** own heartbeats the stream acknowledged. */
  heartbeatsAcked: number;
  /** own heartbeats not acknowledged (an error or no answer within the lease). */
  heartbeatAckFailures: number;
  /** leader reads of a silent peer's newest stored heartbeat before a take-over. */
  takeoverReads: number;
  /** such reads that got no answer (no stream leader); the peer is kept. */
  takeoverReadFailures: number;
  /** such reads that found a newer heartbeat than this node heard; the peer is kept. */
  takeoverRefused: number;
}

export function emptyLeaseStats(): LeaseStats {
  return {
    heartbeatsAcked: 0,
    heartbeatAckFailures: 0,
    takeoverReads: 0,
    takeoverReadFailures: 0,
    takeoverRefused: 0,
  };
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
  /**
   * jetstream mode (config.leases "jetstream"): the heartbeat stream. Our lease is renewed by
   * its acknowledgements, and silent peers are dropped only after a leader read (takeover.ts).
   */
  readonly stream?: HeartbeatStream | undefined;
  /**
   * Joining step by step (ShardNodeOptions.joinStepPartitions): a member that starts while
   * others are live begins with an admission front of 0. 0 or absent: it joins at once.
   */
  readonly joinStep?: number | undefined;
  /** Runs before each periodic heartbeat is sent (ShardNode moves its join front there). */
  readonly beforeBeat?: (() => void) | undefined;
  /** Called synchronously whenever the live set, the fenced flag or an admission front changes. */
  readonly onChange: (members: readonly string[], fenced: boolean) => void;
}
