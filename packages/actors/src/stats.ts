// What `sharding.stats()` returns: one snapshot of the counters of routing, hosting, hand-off,
// replication, incoming requests and reminders, gathered from the parts that keep them.

import { type BackgroundStats, emptyBackgroundStats } from "./background.js";
import type { BatchStats } from "./batch.js";
import { type EpochStats, emptyEpochStats } from "./epochs.js";
import type { HostStats } from "./handler.js";
import { emptyHandoffStats, type HandoffStats } from "./handoff.js";
import type { HostParts } from "./host.js";
import type { InboundStats } from "./inbound.js";
import type { ReminderStats } from "./reminders.js";
import { emptyReplicationStats, type Replicator } from "./replication.js";
import type { RouterStats } from "./router.js";

export interface ShardingStats {
  readonly router: Readonly<RouterStats>;
  /** Batching per destination (batch.ts): batches and entries sent, replies matched. */
  readonly batches: Readonly<BatchStats>;
  readonly host: Readonly<HostStats> & {
    readonly active: number;
    readonly known: number;
    /** Answers not sent because this node's lease lapsed after the handler ran (dispatch.ts). */
    readonly answersWithheld: number;
  };
  readonly handoff: Readonly<HandoffStats> & { readonly outbox: number };
  /** Fencing tokens taken, and what they cost (epochs.ts). */
  readonly epochs: Readonly<EpochStats>;
  readonly replication: {
    readonly writes: number;
    readonly quorumFailures: number;
    readonly copiesIn: number;
    readonly copiesStale: number;
    /** Copies refused with `stale` (from a non-primary, or older than ours). */
    readonly copiesRefused: number;
    /** Our writes a replica refused with `stale` (the entity was given up). */
    readonly writesRefused: number;
    /** Of copiesRefused: those of an epoch below the highest this node knows for the partition. */
    readonly epochRefused: number;
    readonly refills: number;
    readonly refillsFailed: number;
    /** Copies held whose packed record was malformed when a hand-off or promotion unpacked it. */
    readonly copiesMalformed: number;
    readonly copies: number;
    /** Requests that carried copies to replicas (a `reps` batch, or one copy alone; copy-batch.ts). */
    readonly copyRequests: number;
    /** Copies those requests carried. */
    readonly copiesSent: number;
    /** Durable writes group commit started (commit.ts), and the answers they released. */
    readonly commitWrites: number;
    readonly commitReleased: number;
  };
  readonly requests: Readonly<InboundStats>;
  readonly reminders: Readonly<ReminderStats>;
  /** The background queue: hand-off pulls, refills, pruning (docs/concepts/background-work.md). */
  readonly background: BackgroundStats;
}

/** Copies every counter, so the snapshot does not change under the caller. */
export function shardingStats(from: {
  readonly router: Readonly<RouterStats>;
  readonly batches: Readonly<BatchStats>;
  readonly hostStats: Readonly<HostStats>;
  readonly host: HostParts | undefined;
  readonly replicator: Replicator | undefined;
  readonly requests: Readonly<InboundStats>;
}): ShardingStats {
  const { host: h, replicator } = from;
  return {
    router: { ...from.router },
    batches: { ...from.batches },
    host: {
      ...from.hostStats,
      active: h?.lifecycle.activeCount ?? 0,
      known: h?.slots.count ?? 0,
      answersWithheld: h?.dispatcher.answersWithheld ?? 0,
    },
    handoff: { ...(h?.handoff.stats ?? emptyHandoffStats()), outbox: h?.outbox.size ?? 0 },
    epochs: h?.handoff.epochStats ?? emptyEpochStats(),
    replication: {
      ...(replicator?.stats ?? emptyReplicationStats()),
      copies: replicator?.copyCount ?? 0,
      copyRequests: replicator?.copyBatchStats?.requests ?? 0,
      copiesSent: replicator?.copyBatchStats?.copies ?? 0,
      commitWrites: h?.commit?.stats.writes ?? 0,
      commitReleased: h?.commit?.stats.released ?? 0,
    },
    requests: { ...from.requests },
    reminders: { ...(h?.reminders.stats ?? { pending: 0, fired: 0, deferred: 0, failed: 0 }) },
    background: h?.background.stats ?? emptyBackgroundStats(),
  };
}
