// Every node fenced at once: the only nats-server paused (SIGSTOP) for 3 x ttl under load, in
// both lease modes. No node can renew (no echo, no PubAck), so all fence and rejoin when the
// server resumes. Asserts 0 keys acknowledged by two nodes at overlapping times; prints lost
// acknowledged writes and linearizability as figures. A stream-leader election in jetstream
// mode fences every node in the same way (nats-partition.test.ts, case c).
import { NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";
import { judgeOwners, now, watchFenced } from "./partition-support.js";
import { connectClient, LEASE, runLoad, sleep, spawnNodes } from "./support.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

describe("safety: every node fenced at once (the only NATS server paused)", () => {
  for (const leases of ["echo", "jetstream"] as const) {
    it(`leases: ${leases}`, async () => {
      const server = await NatsServer.start({ jetstream: true });
      cleanup.push(() => server.close());
      const cluster = `outage-${leases}`;
      const nodes: ShardingProcess[] = await spawnNodes(server.url, cluster, 4, { leases });
      for (const n of nodes) cleanup.push(() => n.kill());
      const c = await connectClient(server.url, cluster);
      cleanup.push(() => c.close());
      await waitFor(() => c.node.members().length === 4, { timeout: 20_000 });
      const load = runLoad(c);
      await sleep(1500);
      const watch = watchFenced(nodes);
      const faultAt = now();
      process.kill(server.pid, "SIGSTOP");
      await sleep(3 * LEASE.ttlMs);
      process.kill(server.pid, "SIGCONT");
      const healAt = now();
      const fenced = await watch.stop();
      expect([...fenced].sort(), "every node fenced").toEqual(nodes.map((n) => n.id).sort());
      await waitFor(() => c.node.members().length === 4, { timeout: 30_000 });
      await sleep(3 * LEASE.ttlMs);
      await load.stop();
      await sleep(500);
      console.log(`[nats-outage] leases: ${leases}: ${load.total} asks, ${load.failed} failed`);
      await judgeOwners(
        `server paused, leases: ${leases}`,
        c,
        [load],
        nodes.flatMap((n) => n.acks),
        {
          faultAt,
          healAt,
        },
      );
    });
  }
});
