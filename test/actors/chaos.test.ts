// Replication and durable state under real faults, with node processes on real nats-server:
// SIGKILL of a node and then another, a rolling restart of every node, a NATS server lost from
// a 3-server cluster, and a whole-cluster restart with the KV store. Acknowledged increments
// are never lost: every counter ends between its acknowledged and its attempted increments.
// A single-instance oracle records activations in every process and reports the longest time
// two processes had the same key active.
import type { Sharding, ShardingOptions } from "@keyhold/actors";
import { longestOverlap, NatsCluster, NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Replicated } from "../fixtures/entities.js";
import { connectClient, load as loadCounters, spawnNode } from "./support.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function client(servers: string | string[], cluster: string, extra: Partial<ShardingOptions> = {}) {
  return connectClient(servers, cluster, { entities: [Replicated], askTimeoutMs: 15_000, ...extra });
}

/** Increments on replicated counters with `concurrency` in flight until stopped. */
function load(c: Sharding, keys: readonly string[], concurrency = 32) {
  return loadCounters(c, keys, concurrency, Replicated);
}

async function checkBounds(c: Sharding, keys: readonly string[], l: ReturnType<typeof load>) {
  const values = await Promise.all(keys.map((k) => c.ref(Replicated, k).get()));
  let exact = 0;
  keys.forEach((k, i) => {
    expect(values[i], `${k} >= acknowledged`).toBeGreaterThanOrEqual(l.acked.get(k) ?? 0);
    expect(values[i], `${k} <= attempted`).toBeLessThanOrEqual(l.attempted.get(k) ?? 0);
    if (values[i] === (l.acked.get(k) ?? 0)) exact++;
  });
  return exact;
}

describe("chaos with replicas: 3", () => {
  it("SIGKILL one node, then another after recovery: no acknowledged increment lost", async () => {
    const srv = await NatsServer.start();
    cleanup.push(() => srv.close());
    const nodes: ShardingProcess[] = [];
    const exits = new Map<number, number>();
    for (let i = 0; i < 4; i++) {
      const n = await spawnNode(srv.url, "chaos1");
      nodes.push(n);
      cleanup.push(() => n.kill());
    }
    const c = await client(srv.url, "chaos1");
    cleanup.push(() => c.close());
    await waitFor(() => c.node.members().length === 4);
    const keys = Array.from({ length: 1000 }, (_, i) => `r-${i}`);
    const l = load(c, keys);
    await sleep(1000);
    for (const victim of [nodes[1]!, nodes[3]!]) {
      const before = l.total;
      await victim.kill("SIGKILL");
      exits.set(victim.pid, Date.now());
      await waitFor(() => !c.node.members().includes(victim.id), { timeout: 10_000 });
      await sleep(1500); // recovery: failover, refill to N copies
      expect(l.total).toBeGreaterThan(before);
    }
    await l.stop();
    const exact = await checkBounds(c, keys, l);
    const oracle = nodes.flatMap((n) => n.oracle);
    expect(oracle.filter((e) => e.event === "activate").length).toBeGreaterThanOrEqual(1000);
    const overlap = longestOverlap(oracle, (pid) => exits.get(pid) ?? Date.now());
    console.log(
      `[chaos] kill x2: ${l.total} acknowledged, ${l.errors.length} failed asks, ${exact}/${keys.length} counters exactly at acknowledged; ` +
        `longest two-active window ${overlap.ms} ms (${overlap.key || "none"}); ${oracle.length} oracle events; ` +
        `failures: ${[...new Set(l.errors.map((e) => e.split(":")[0]))].join(", ")}`,
    );
    expect(l.total).toBeGreaterThan(1000);
  });

  it("rolling restart of every node under load: zero failed asks, every counter exact", async () => {
    const srv = await NatsServer.start();
    cleanup.push(() => srv.close());
    const nodes: ShardingProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const n = await spawnNode(srv.url, "roll");
      nodes.push(n);
      cleanup.push(() => n.kill());
    }
    const c = await client(srv.url, "roll");
    cleanup.push(() => c.close());
    await waitFor(() => c.node.members().length === 3);
    const keys = Array.from({ length: 500 }, (_, i) => `roll-${i}`);
    const l = load(c, keys);
    await sleep(500);
    for (let i = 0; i < 3; i++) {
      const fresh = await spawnNode(srv.url, "roll");
      cleanup.push(() => fresh.kill());
      await waitFor(() => c.node.members().length === 4);
      await sleep(300);
      const old = nodes[i]!;
      await old.close();
      await waitFor(() => !c.node.members().includes(old.id));
      await sleep(300);
      nodes[i] = fresh;
    }
    await l.stop();
    expect(l.errors).toEqual([]);
    const exact = await checkBounds(c, keys, l);
    expect(exact).toBe(keys.length);
    const overlap = longestOverlap(
      nodes.flatMap((n) => n.oracle),
      () => Date.now(),
    );
    console.log(
      `[chaos] rolling restart: ${l.total} acknowledged, 0 failed; longest two-active window ${overlap.ms} ms`,
    );
  });

  it("a NATS server lost from a 3-server cluster: nothing acknowledged is lost", async () => {
    const nc = await NatsCluster.start(3);
    cleanup.push(() => nc.close());
    await nc.waitForRoutes();
    const urls = nc.urls;
    const nodes: ShardingProcess[] = [];
    for (let i = 0; i < 3; i++) {
      // each node prefers its own server and fails over to the others
      const order = [urls[i]!, ...urls.filter((_, j) => j !== i)];
      const n = await spawnNode(order[0]!, "lost", {
        natsOptions: { servers: order, noRandomize: true },
      } as never);
      nodes.push(n);
      cleanup.push(() => n.kill());
    }
    const c = await client([urls[2]!, urls[1]!], "lost", { natsOptions: { noRandomize: true } });
    cleanup.push(() => c.close());
    await waitFor(() => c.node.members().length === 3, { timeout: 15_000 });
    const keys = Array.from({ length: 500 }, (_, i) => `nats-${i}`);
    const l = load(c, keys);
    await sleep(800);
    const before = l.total;
    await nc.kill(0);
    await sleep(3000);
    await waitFor(() => c.node.members().length === 3, {
      timeout: 15_000,
      message: "all nodes back after failover",
    });
    await sleep(800);
    await l.stop();
    expect(l.total).toBeGreaterThan(before);
    const exact = await checkBounds(c, keys, l);
    console.log(
      `[chaos] server lost: ${l.total} acknowledged, ${l.errors.length} failed, ${exact}/${keys.length} exact`,
    );
  });
});

describe("durable state in NATS KV", () => {
  it("a whole-cluster restart (every node SIGKILLed at once) keeps every acknowledged write", async () => {
    const srv = await NatsServer.start({ jetstream: true });
    cleanup.push(() => srv.close());
    const opts = { storeBucket: "chaos_kv" };
    const first: ShardingProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const n = await spawnNode(srv.url, "kv", opts);
      first.push(n);
      cleanup.push(() => n.kill());
    }
    const c = await client(srv.url, "kv");
    cleanup.push(() => c.close());
    await waitFor(() => c.node.members().length === 3);
    const keys = Array.from({ length: 300 }, (_, i) => `kv-${i}`);
    const l = load(c, keys, 16);
    // Enough acknowledged writes for the restart to have something to lose (by count, not by
    // time: a loaded machine acknowledges fewer per second).
    await sleep(1500);
    await waitFor(() => l.total > 300, { timeout: 30_000, message: "fewer than 300 writes acknowledged" });
    await Promise.all(first.map((n) => n.kill("SIGKILL")));
    await l.stop();
    await waitFor(() => c.node.members().length === 0, { timeout: 10_000 });
    const second: ShardingProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const n = await spawnNode(srv.url, "kv", opts);
      second.push(n);
      cleanup.push(() => n.kill());
    }
    await waitFor(() => c.node.members().length === 3);
    const exact = await checkBounds(c, keys, l);
    console.log(
      `[chaos] kv restart: ${l.total} acknowledged before the crash, ${exact}/${keys.length} exact after restart`,
    );
    expect(l.total).toBeGreaterThan(300);
  });
});
