// The hand-over half of a graceful leave: after announcing it, a node keeps answering pulls
// until the new owners took every partition's records, or handoffTimeoutMs passed.
import type { Clock, Logger, ShardNode } from "@keyhold/core";
import { sleep } from "./backoff.js";
import type { HostParts } from "./host.js";

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
