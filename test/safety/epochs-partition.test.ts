// Fencing tokens under a NATS cluster split: 3 nats-servers with JetStream, every route through
// a proxy, 5 node processes (2 on server C), `replicas: 3` counters and registers under load from
// a client on each side; C is cut off from A and B for 3 x ttl, then healed. What the epochs
// alone guarantee (the JetStream-acknowledged lease is separate work, `leases` in core): the
// minority side cannot take epochs, so it acknowledges nothing for a partition it did not
// already serve before the split; and after the heal no write the majority side acknowledged
// is lost (the minority's records carry older epochs and lose). The writes the minority
// acknowledged on partitions it kept serving are printed: without leases acknowledged by
// JetStream they are replaced by the majority's history at the heal.

import { epochBucket } from "@keyhold/actors";
import {
  type AckRecord,
  lostWrites,
  ProxiedNatsCluster,
  sharedMonotonicNow,
  waitFor,
} from "@keyhold/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { appliedOps } from "./partition-support.js";
import { connectClient, LEASE, runLoad, sleep, spawnNodes } from "./support.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});
const now = sharedMonotonicNow;

describe("fencing tokens: a NATS cluster split", { timeout: 180_000 }, () => {
  // Skipped until 2026-12-02 for one run that lost 75 of 990 majority-acknowledged writes after
  // the merges; not reproduced since in 9 runs of the same code (some with a core held busy),
  // the cause not found. When a majority write is lost, the test prints each one's key,
  // partition and write timeline (KEYHOLD_CHILD_LOG=1 adds the nodes' logs) to find it.
  it("server C cut off for 3 x ttl: the minority serves nothing it took over, no majority write lost", async () => {
    const nats = await ProxiedNatsCluster.start({ size: 3, jetstream: true });
    cleanup.push(() => nats.close());
    await nats.waitForRoutes();
    const [a, b, c] = nats.urls as [string, string, string];
    // n2 and n3 on server C (index 2), the minority.
    // Echo leases: this test is about what the fencing tokens alone hold. With leases
    // acknowledged by JetStream (the default here) the minority fences before it tries to take
    // an epoch; test/safety/nats-partition.test.ts covers that.
    const nodes = await spawnNodes([a, b, c, c, a], "epsplit", 5, { leases: "echo" });
    for (const n of nodes) cleanup.push(() => n.kill());
    const minority = new Set([nodes[2]!.id, nodes[3]!.id]);
    const major = await connectClient(a, "epsplit", { leases: "echo" });
    const minor = await connectClient(c, "epsplit", { leases: "echo" });
    cleanup.push(
      () => major.close(),
      () => minor.close(),
    );
    await waitFor(() => major.node.members().length === 5 && minor.node.members().length === 5, {
      timeout: 30_000,
    });
    // Every node owns partitions once all five are members, and takes an epoch for each before
    // serving it: wait for those takes (a loaded machine may still be taking them).
    await waitFor(
      async () => (await Promise.all(nodes.map((n) => n.state()))).every((s) => s.stats.epochs.taken > 0),
      { timeout: 30_000, message: "a node took no epoch" },
    );
    // The epoch bucket spans the three servers, so only a side with two of them can write it.
    const nc = await connect({ servers: a });
    cleanup.push(() => nc.close());
    // Every node took epochs from the bucket, yet a server that has not applied the stream's
    // assignment yet answers "stream not found" (seen on a loaded machine, once for over 10 s): ask again.
    const jsm = await jetstreamManager(nc);
    let replicas = 0;
    await waitFor(
      async () => {
        replicas = (await jsm.streams.info(`KV_${epochBucket("epsplit")}`)).config.num_replicas;
        return true;
      },
      { timeout: 30_000, message: "the epoch bucket's stream info" },
    );
    expect(replicas).toBe(3);
    const loads = [runLoad(major, 8), runLoad(minor, 8)];
    await sleep(1500);
    // What each minority node serves right before the split.
    const before = new Map<string, Set<number>>();
    for (const n of nodes) if (minority.has(n.id)) before.set(n.id, new Set((await n.state()).owned));
    const cutAt = now();
    nats.isolate(2);
    await sleep(3 * LEASE.ttlMs + 1000);
    const minorityState = await Promise.all(nodes.filter((n) => minority.has(n.id)).map((n) => n.state()));
    const healAt = now();
    nats.heal();
    await waitFor(() => major.node.members().length === 5, { timeout: 30_000 });
    await sleep(3 * LEASE.ttlMs);
    for (const l of loads) await l.stop();
    await sleep(500);
    const acks: AckRecord[] = nodes.flatMap((n) => n.acks);
    const partitionOf = (key: string) => major.node.ring.partition(key.slice(key.indexOf("/") + 1));
    // (1) The minority acknowledged nothing for a partition it did not serve before the split.
    const foreign = acks.filter(
      (r) =>
        minority.has(r.node) &&
        r.t1 > cutAt + LEASE.ttlMs &&
        r.t1 < healAt &&
        !before.get(r.node)?.has(partitionOf(r.key)),
    );
    const takeFailures = minorityState.reduce((s, st) => s + st.stats.epochs.failures, 0);
    // (2) No write acknowledged by a majority node is lost.
    const { applied, ms } = await appliedOps(major);
    console.log(`[epochs split] every key served again ${ms} ms after the final reads began`);
    const majorityLost = lostWrites(
      acks.filter((r) => !minority.has(r.node)),
      (k) => applied.get(k),
    );
    const minorityLost = lostWrites(
      acks.filter((r) => minority.has(r.node)),
      (k) => applied.get(k),
    );
    if (majorityLost.lost.length > 0) {
      // Where the lost writes come from: each one's key, partition and the key's write timeline
      // (node@seconds from the cut; * the lost one). KEYHOLD_CHILD_LOG=1 adds the nodes' logs.
      console.log(`[diag] cutAt ${cutAt} healAt ${healAt}`);
      const rel = (t: number) => `${((t - cutAt) / 1000).toFixed(2)}s`;
      for (const r of majorityLost.lost.slice(0, 15)) {
        const tl = acks
          .filter((x) => x.key === r.key && x.kind === "write")
          .sort((x, y) => x.t1 - y.t1)
          .map((x) => `${x.node}@${rel(x.t1)}${x.op === r.op ? "*" : ""}`);
        console.log(
          `[diag] lost ${r.key} ${r.op} by ${r.node} at ${rel(r.t1)} (heal at ${rel(healAt)}); p=${partitionOf(r.key)} timeline ${tl.join(" ")}`,
        );
      }
      if (process.env.KEYHOLD_CHILD_LOG)
        for (const n of nodes) console.log(`[diag] ${n.id} logs:\n${n.logs().join("\n")}`);
    }
    const [lm, ln] = loads as [ReturnType<typeof runLoad>, ReturnType<typeof runLoad>];
    console.log(
      `[epochs split] majority client: ${lm.total} asks, ${lm.failed} failed; minority client: ${ln.total} asks, ${ln.failed} failed; ` +
        `minority epoch takes failed ${takeFailures}; minority acks on partitions taken over during the split ${foreign.length}; ` +
        `majority-acknowledged writes ${majorityLost.acked}, lost ${majorityLost.lost.length}; ` +
        `minority-acknowledged writes ${minorityLost.acked}, lost ${minorityLost.lost.length} (needs JetStream-acknowledged leases)`,
    );
    expect(takeFailures, "the minority side tried to take epochs and could not").toBeGreaterThan(0);
    expect(foreign.map((r) => `${r.key} ${r.op} (${r.node})`)).toEqual([]);
    expect(majorityLost.lost.map((r) => `${r.key} ${r.op} (${r.node})`)).toEqual([]);
  });
});
