// ShardNode keeps the end of its lease cached so the check costs a comparison (shard-node.ts,
// #validUntil). The cache may only ever be earlier than membership's view, never later: these
// tests compare leaseValid()/leaseValidAt() with membership's own answer (leaseRemainingMs)
// at every millisecond across a stall, a fence and a rejoin, and after leave() and close().
import { ShardNode, silentLogger } from "@keyhold/core";
import { SimBus, type SimEndpoint, VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";

const HB = 100;
const TTL = 400;

async function start(bus: SimBus, id: string, ep: SimEndpoint = bus.connect(id)): Promise<ShardNode> {
  let node: ShardNode | undefined;
  const p = ShardNode.start({
    transport: ep,
    clock: bus.clock,
    cluster: "c",
    nodeId: id,
    heartbeatMs: HB,
    ttlMs: TTL,
    skewMs: 200,
    logger: silentLogger,
  }).then((n) => {
    node = n;
  });
  while (node === undefined) await bus.clock.advance(1);
  await p;
  return node;
}

/** Whether the cached check agrees with membership's answer now. */
function agrees(n: ShardNode): boolean {
  const mono = n.monoNow();
  return n.leaseValid() === n.leaseRemainingMs() > 0 && n.leaseValidAt(mono) === n.leaseRemainingMs() > 0;
}

describe("ShardNode lease cache", () => {
  it("agrees with membership at every ms through a stall past the lease, the fence and the rejoin", async () => {
    const clock = new VirtualClock();
    const bus = new SimBus(clock, { latencyMs: 1 });
    const link = bus.connect("a");
    const a = await start(bus, "a", link);
    const b = await start(bus, "b");
    let valid = 0;
    let lapsed = 0;
    for (let t = 0; t < 3000; t++) {
      // From 1000 to 1800 ms a's link is cut: no echoes, its lease lapses and it fences.
      if (t === 1000) link.disconnect();
      if (t === 1800) link.reconnect();
      await clock.advance(1);
      for (const n of [a, b]) expect(agrees(n), `${n.id} at ${t} ms`).toBe(true);
      if (a.leaseValid()) valid++;
      else lapsed++;
    }
    // Both states were seen: the comparison ran on a live and on a lapsed lease.
    expect(valid).toBeGreaterThan(1000);
    expect(lapsed).toBeGreaterThan(300);
    await a.close();
    await b.close();
  });

  it("is invalid at once after leave() and close(), even with the cached end still ahead", async () => {
    const clock = new VirtualClock();
    const bus = new SimBus(clock, { latencyMs: 1 });
    const a = await start(bus, "a");
    const b = await start(bus, "b");
    await clock.advance(HB * 3);
    expect(a.leaseValid()).toBe(true); // caches the end of the lease
    const leaving = a.leave();
    expect(a.leaseValid()).toBe(false);
    expect(a.leaseValidAt(a.monoNow())).toBe(false);
    while (!(await Promise.race([leaving.then(() => true), clock.advance(1).then(() => false)]))) {}
    expect(b.leaseValid()).toBe(true);
    const closing = b.close();
    expect(b.leaseValid()).toBe(false);
    while (!(await Promise.race([closing.then(() => true), clock.advance(1).then(() => false)]))) {}
    await a.close();
  });
});
