// The counters of replication.ts (Sharding.stats().replication adds the copy batcher's and
// group commit's, stats.ts).

export interface ReplicationStats {
  /** Writes sent to replicas. */
  writes: number;
  /** Writes that missed their quorum (the caller got QuorumError). */
  quorumFailures: number;
  /** Copies received and stored (newer than what this node held). */
  copiesIn: number;
  /** Copies received and ignored (this node held the same or a newer version). */
  copiesStale: number;
  /** Copies refused with `stale`: from a node our view does not name primary, or older than ours. */
  copiesRefused: number;
  /** Writes of ours a replica refused with `stale` (the entity was given up). */
  writesRefused: number;
  /** Of copiesRefused: those whose epoch was below the highest this node knows for the partition. */
  epochRefused: number;
  /** Refills: bulk copies sent to bring a partition back to N copies (refill.ts). */
  refills: number;
  /** Refills a replica never acknowledged, after retries. */
  refillsFailed: number;
  /** Copies held whose packed record was malformed when unpacked (hand-off, promotion): dropped. */
  copiesMalformed: number;
}

export function emptyReplicationStats(): ReplicationStats {
  return {
    writes: 0,
    quorumFailures: 0,
    copiesIn: 0,
    copiesStale: 0,
    copiesRefused: 0,
    writesRefused: 0,
    epochRefused: 0,
    refills: 0,
    refillsFailed: 0,
    copiesMalformed: 0,
  };
}
