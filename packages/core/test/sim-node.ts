// Starts a ShardNode on a simulated bus for the core unit tests: drives the virtual clock while
// start() waits for its own heartbeat, and records every event the node emits.
import { type ShardEvent, ShardNode, type ShardNodeOptions, silentLogger } from "@keyhold/core";
import type { SimBus, SimEndpoint } from "@keyhold/testing";

export interface SimNode {
  readonly node: ShardNode;
  /** The node's connection, when the options gave no `transport` of their own. */
  readonly ep: SimEndpoint | undefined;
  /** Every event since start, in order. */
  readonly events: ShardEvent[];
}

/**
 * `id` on `bus`, cluster "t", heartbeat 100 ms, ttl 300 ms, skew 200 ms, silent; `extra` overrides
 * any of them (a `transport` or `clock` of its own, say).
 */
export async function startSimNode(
  bus: SimBus,
  id: string,
  extra: Partial<ShardNodeOptions> = {},
): Promise<SimNode> {
  const ep = extra.transport === undefined ? bus.connect(id) : undefined;
  let settled = false;
  const p = ShardNode.start({
    transport: ep,
    clock: bus.clock,
    cluster: "t",
    nodeId: id,
    heartbeatMs: 100,
    ttlMs: 300,
    skewMs: 200,
    logger: silentLogger,
    ...extra,
  } as ShardNodeOptions).finally(() => {
    settled = true;
  });
  p.catch(() => {});
  while (!settled) await bus.clock.advance(1);
  const node = await p;
  const events: ShardEvent[] = [];
  void (async () => {
    for await (const e of node.events()) events.push(e);
  })();
  return { node, ep, events };
}
