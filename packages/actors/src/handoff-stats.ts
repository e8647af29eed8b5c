// What the hand-off counts (`stats().handoff`): pulls, records in and out, pre-fence records kept
// or dropped, waits, give-ups, and partitions found owned but unserved (owned-watch.ts).

export interface HandoffStats {
  /** Partitions whose records were pulled from a previous owner. */
  pulled: number;
  /** Entity records installed from hand-offs. */
  recordsIn: number;
  /** Records skipped because this node held the same or a newer one (isNewer). */
  recordsStale: number;
  /**
   * This node's own pre-fence records (released while it was fenced) not installed on
   * re-acquiring their partition, because whoever served it meanwhile had a newer record.
   */
  preFenceSuperseded: number;
  /**
   * Pre-fence records dropped on re-acquire because a member that may have served the
   * partition meanwhile did not answer the pull (its entities restart from initialState()).
   */
  preFenceDropped: number;
  /**
   * Re-acquisitions whose pre-fence records were installed although the pull missed members,
   * because the fence was too short for a take-over (fence-witness.ts).
   */
  preFenceLeaseKept: number;
  /** Re-acquisitions whose replicated pre-fence records waited for whom the pull missed (await-copy.ts). */
  copyWaits: number;
  /**
   * Acquisitions held back, the partition unserved, because the pull missed a write quorum of its
   * replica set (majorityReplicas(N) + 1 members unanswered; await-copy.ts `quorum`).
   */
  quorumWaits: number;
  /** Partitions whose records were taken from this node's outbox by a new owner. */
  handedOff: number;
  /** Pulls given up: the previous owner was gone or did not answer in handoffTimeoutMs. */
  pullsAbandoned: number;
  /** Messages buffered while a partition was pending. */
  buffered: number;
  malformed: number;
  /** Partitions given up because a replica refused a copy as stale (a higher epoch exists). */
  partitionsYielded: number;
  /**
   * `stale` answers that did not give a partition up: the replica's view named as primary a node
   * this node's view had already dropped (host.ts), so only its view lagged.
   */
  staleFromLaggingView: number;
  /**
   * Owned partitions found neither served, nor draining, nor being taken over for two
   * heartbeats, and taken over then (owned-watch.ts); 0 unless some path forgot one.
   */
  partitionsRecovered: number;
}

export function emptyHandoffStats(): HandoffStats {
  return {
    pulled: 0,
    recordsIn: 0,
    recordsStale: 0,
    preFenceSuperseded: 0,
    preFenceDropped: 0,
    preFenceLeaseKept: 0,
    copyWaits: 0,
    quorumWaits: 0,
    handedOff: 0,
    pullsAbandoned: 0,
    buffered: 0,
    malformed: 0,
    partitionsYielded: 0,
    staleFromLaggingView: 0,
    partitionsRecovered: 0,
  };
}
