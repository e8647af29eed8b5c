// The holder's side of a pull (handoff.ts): what a member answers a new owner that asks for a
// partition's records ("wait", "busy", or the records it holds, in pages).
import type { Clock, ShardNode } from "@keyhold/core";
import { sleep } from "./backoff.js";
import type { Outbox } from "./outbox.js";
import type { PartitionStates } from "./partitions.js";
import type { Replicator } from "./replication.js";
import { encode, pageRecords } from "./wire.js";

export interface ServePullParams {
  readonly node: ShardNode;
  readonly nodeId: string;
  readonly handoffTimeoutMs: number;
  readonly partitions: PartitionStates;
  readonly outbox: Outbox;
  readonly replicator?: Replicator | undefined;
  readonly clock: Clock;
}

/**
 * Answers a new owner's pull: "wait" while this node still owns `p` or is draining it, else
 * the records it holds for `p` — only to the node its own view names as the owner.
 */
export async function servePull(
  a: ServePullParams,
  p: number,
  from: string,
  reply: (data: Uint8Array) => void,
  cursor = 0,
  ep = 0,
): Promise<void> {
  const wait = () => reply(encode({ v: 1, k: "states", p, status: "wait", recs: [] }));
  const { partitions } = a;
  // The puller's epoch fences this node as a replica of `p` before anything is handed out.
  if (ep > 0) {
    partitions.see(p, ep);
    a.replicator?.fence(p, ep);
  }
  const self = a.nodeId;
  const ring = () => a.node.ring;
  const st = partitions.get(p);
  if (st?.s === "releasing") {
    // Draining: answer when done if that is soon, else "busy", which keeps the new owner
    // waiting past its handoffTimeoutMs (up to BUSY_PATIENCE_FACTOR times it) for us.
    if (!st.busy) await Promise.race([st.done, sleep(a.clock, Math.min(100, a.handoffTimeoutMs / 8))]);
    if (partitions.get(p) === st || partitions.get(p)?.s === "releasing")
      return reply(encode({ v: 1, k: "states", p, status: "wait", recs: [], busy: true }));
  } else if (st !== undefined) return wait();
  if (partitions.has(p) || ring().ownerOfPartition(p) === self) return wait();
  const held = a.outbox.peek(p);
  // Replica copies are copies, not moves: anyone may read them (read repair).
  const copies = a.replicator?.copiesOf(p) ?? [];
  // Views converge within a heartbeat; until ours names the asker, it may not be the owner.
  if (held && held.length > 0 && ring().ownerOfPartition(p) !== from) return wait();
  const all = held ? [...held, ...copies] : copies;
  const { page, next } = pageRecords(all, cursor);
  if (held && held.length > 0) a.outbox.served(p, from, ep, cursor);
  reply(encode({ v: 1, k: "states", p, status: "ok", recs: page, next }));
}
