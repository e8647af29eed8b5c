// The hand-over half of a graceful leave: after announcing it, a node keeps answering pulls
// until the new owners took every partition's records, or handoffTimeoutMs passed.
import type { Clock, Logger, ShardNode } from "@keyhold/core";
import { sleep } from "./backoff.js";
import type { HostParts } from "./host.js";

/**
 * Before the leave, with joinStepPartitions: gives the partitions up a step per heartbeat (core
 * ShardNode.releaseStepwise), each step once the last one's records were taken, for at most
 * `timeoutMs`; then the leave itself moves nothing (a member at front 0 owns nothing).
 */
export async function releaseStepwise(a: {
  readonly host: HostParts;
  readonly node: ShardNode;
  readonly clock: Clock;
  readonly timeoutMs: number;
}): Promise<void> {
  const { partitions, outbox } = a.host;
  // Handed off: we hold only what we own, serve all of it, and the new owners took the rest.
  const handedOff = (owned: readonly number[]) =>
    partitions.heldCount === owned.length &&
    outbox.size === 0 &&
    owned.every((p) => partitions.state(p) === "ready");
  let timer: unknown;
  const late = new Promise<void>((r) => {
    timer = a.clock.setTimeout(r, a.timeoutMs);
  });
  await Promise.race([a.node.releaseStepwise(handedOff), late]);
  a.clock.clearTimeout(timer);
}

/** Waits (up to `timeoutMs`) until the new owners took every partition's records. */
export async function awaitHandover(a: {
  readonly host: HostParts;
  readonly node: ShardNode;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly timeoutMs: number;
}): Promise<void> {
  const { host, node, clock } = a;
  const { partitions, outbox } = host;
  const deadline = clock.now() + a.timeoutMs;
  // Wait while someone is left to take the records; the last member has nobody to wait for.
  while (
    (partitions.heldCount > 0 || outbox.size > 0) &&
    node.members().length > 0 &&
    clock.now() < deadline
  ) {
    await sleep(clock, 10);
  }
  await partitions.settled();
  if (outbox.size > 0) {
    a.logger.warn(
      node.members().length === 0
        ? `node ${node.id}: closing as the last member; the state of ${outbox.size} partitions is dropped`
        : `node ${node.id}: closing with ${outbox.size} partitions not taken by a new owner within ${a.timeoutMs} ms`,
    );
  }
}
