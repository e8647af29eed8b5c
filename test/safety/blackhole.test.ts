// Test (3) of issue 8: one node's client link to NATS blackholed (connection open, every byte
// dropped both ways) for 3 x ttl under load, then healed. Its lease lapses before its peers
// take over, it fences, and it rejoins after the heal: no acknowledged write lost, no key
// acknowledged by two nodes at overlapping times, every register linearizable.
import { FaultProxy, NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";
import { connectClient, judge, LEASE, runLoad, sleep, spawnNodes } from "./support.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

describe("safety: a node cut off from NATS", () => {
  it("client link blackholed for 3 x ttl, then healed: nothing lost, no two owners, linearizable", async () => {
    const server = await NatsServer.start();
    cleanup.push(() => server.close());
    const proxy = await FaultProxy.start({ targetPort: server.port });
    cleanup.push(() => proxy.close());
    // n0 reaches NATS through the proxy, the others directly.
    const nodes: ShardingProcess[] = await spawnNodes(
      [proxy.url, server.url, server.url, server.url],
      "hole1",
      4,
    );
    for (const n of nodes) cleanup.push(() => n.kill());
    const victim = nodes[0]!;
    const c = await connectClient(server.url, "hole1");
    cleanup.push(() => c.close());
    await waitFor(() => c.node.members().length === 4, { timeout: 20_000 });
    const load = runLoad(c);
    await sleep(1500);
    proxy.blackhole();
    await waitFor(() => !c.node.members().includes(victim.id), { timeout: 20_000 });
    const fenced = await waitFor(async () => (await victim.state()).fenced, {
      timeout: 20_000,
      message: "the cut-off node did not fence itself",
    }).then(() => true);
    expect(fenced).toBe(true);
    await sleep(3 * LEASE.ttlMs);
    proxy.heal();
    await waitFor(() => c.node.members().includes(victim.id), { timeout: 30_000 });
    await sleep(LEASE.ttlMs * 3);
    await load.stop();
    await sleep(500);
    expect(
      proxy.stats.forwardDropped + proxy.stats.backwardDropped,
      "the blackhole dropped bytes",
    ).toBeGreaterThan(0);
    await judge(
      "client link blackholed 3 x ttl",
      c,
      load,
      nodes.flatMap((n) => n.acks),
    );
  });
});
