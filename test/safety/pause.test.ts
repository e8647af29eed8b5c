// Test (1) of issue 8: a node SIGSTOPped past the take-over, with `replicas: 3`, under load from
// a client in the test process, then SIGCONT. When it runs again its lease has lapsed, so it
// must not act as owner on anything waiting in its socket: no acknowledged write lost, no key
// acknowledged by two nodes at overlapping times, every register linearizable.
import { ackClock, NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";
import { connectClient, judge, LEASE, runLoad, sleep, spawnNodes } from "./support.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

describe("safety: a paused node", () => {
  it("SIGSTOP past the take-over, replicas: 3, then SIGCONT: nothing lost, no two owners, linearizable", async () => {
    const server = await NatsServer.start();
    cleanup.push(() => server.close());
    const nodes: ShardingProcess[] = await spawnNodes(server.url, "pause1", 4);
    for (const n of nodes) cleanup.push(() => n.kill());
    // Attempts that outlast a pause: an ask sent to the stopped node waits in its socket until
    // it runs again (the backlog libuv hands it before any timer), instead of being retried
    // elsewhere first.
    const c = await connectClient(server.url, "pause1", { attemptTimeoutMs: 6000, askTimeoutMs: 20_000 });
    cleanup.push(() => c.close());
    await waitFor(() => c.node.members().length === 4, { timeout: 20_000 });
    const load = runLoad(c);
    await sleep(1500);
    const resumes: number[] = [];
    for (const victim of [nodes[1]!, nodes[2]!, nodes[3]!]) {
      victim.pause();
      // Past the take-over: the others drop it after ttlMs and serve its keys meanwhile.
      await waitFor(() => !c.node.members().includes(victim.id), { timeout: 20_000 });
      await sleep(LEASE.ttlMs * 2);
      victim.resume();
      resumes.push(ackClock());
      await waitFor(() => c.node.members().includes(victim.id), { timeout: 20_000 });
      await sleep(LEASE.ttlMs * 2);
    }
    await load.stop();
    await sleep(500);
    // Asks that were waiting when a victim resumed: sent before, answered after.
    const queued = load.history
      .operations()
      .filter((o) => resumes.some((r) => o.invokedAt < r && o.completedAt > r)).length;
    console.log(`[safety] SIGSTOP x3 (replicas: 3): ${queued} asks waiting at a resume`);
    expect(queued, "asks waiting in a paused node's socket at its resume").toBeGreaterThan(0);
    await judge(
      "SIGSTOP x3 with queued input (replicas: 3)",
      c,
      load,
      nodes.flatMap((n) => n.acks),
    );
  });
});
