// Fencing tokens against a real nats-server with JetStream and node processes: every
// acquisition takes its epoch by a conditional write to the epoch bucket (the token a handler
// sees is that write's revision), the token rises for every key whose owner changed (a join
// hand-off, a SIGKILL failover), no acknowledged increment is lost on the way, and a
// store-backed entity type writes the token into every stored entry.
import { fileURLToPath } from "node:url";
import { epochBucket, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer, ShardingProcess, waitFor } from "@keyhold/testing";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { Packr } from "msgpackr";
import { afterEach, describe, expect, it } from "vitest";
import { StoredCounter, TokenCounter } from "./epochs-entities.js";
import { LEASE, sleep } from "./support.js";

const ENTITIES = fileURLToPath(new URL("./epochs-entities.ts", import.meta.url));
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

async function spawn(url: string, cluster: string, id: string, storeBucket?: string) {
  const n = await ShardingProcess.spawn(
    {
      servers: url,
      cluster,
      nodeId: id,
      ...LEASE,
      handoffTimeoutMs: 3000,
      epochs: "jetstream",
      ...(storeBucket ? { storeBucket } : {}),
    },
    ENTITIES,
  );
  cleanup.push(() => n.kill());
  return n;
}

async function client(url: string, cluster: string) {
  const c = await Sharding.connect({
    servers: url,
    cluster,
    ...LEASE,
    entities: [TokenCounter, StoredCounter],
    logger: silentLogger,
    askTimeoutMs: 15_000,
  });
  cleanup.push(() => c.close());
  return c;
}

async function bucket(url: string, name: string) {
  const nc = await connect({ servers: url });
  cleanup.push(() => nc.close());
  return new Kvm(nc).open(name);
}

describe("fencing tokens on nats-server with JetStream", () => {
  it("tokens are epoch-bucket revisions, and rise across a join hand-off and a SIGKILL failover", async () => {
    const srv = await NatsServer.start({ jetstream: true });
    cleanup.push(() => srv.close());
    const cluster = "ep1";
    const nodes = [await spawn(srv.url, cluster, "n0"), await spawn(srv.url, cluster, "n1")];
    const c = await client(srv.url, cluster);
    await waitFor(() => c.node.members().length === 2);
    const kv = await bucket(srv.url, epochBucket(cluster));
    const keys = Array.from({ length: 60 }, (_, i) => `t${i}`);
    const acked = new Map<string, number>();
    const round = async () => {
      const out = new Map<string, { token: number; owner: string }>();
      for (const k of keys) {
        const [n, token] = await c.ref(TokenCounter, k).add();
        acked.set(k, (acked.get(k) ?? 0) + 1);
        // Sequential asks: each must see every earlier acknowledged increment.
        expect(n, k).toBe(acked.get(k));
        out.set(k, { token, owner: c.node.place(k)! });
      }
      return out;
    };
    const first = await round();
    for (const k of keys) {
      const e = await kv.get(`p.${c.node.ring.partition(k)}`);
      expect(first.get(k)!.token, k).toBe(e?.revision);
    }
    // A join: the keys it takes get a new, higher token; the others keep theirs.
    nodes.push(await spawn(srv.url, cluster, "n2"));
    await waitFor(() => c.node.members().length === 3);
    await sleep(1500);
    const second = await round();
    let moved = 0;
    for (const k of keys) {
      const [a, b] = [first.get(k)!, second.get(k)!];
      if (a.owner !== b.owner) {
        moved++;
        expect(b.token, k).toBeGreaterThan(a.token);
      } else expect(b.token, k).toBe(a.token);
      expect(b.token, k).toBe((await kv.get(`p.${c.node.ring.partition(k)}`))?.revision);
    }
    expect(moved).toBeGreaterThan(0);
    // A SIGKILL: the victim's keys fail over under higher tokens, nothing acknowledged lost.
    const victim = nodes.find((n) => keys.some((k) => second.get(k)!.owner === n.id))!;
    await victim.kill("SIGKILL");
    await waitFor(() => !c.node.members().includes(victim.id), { timeout: 10_000 });
    await sleep(1000);
    const third = await round();
    let failedOver = 0;
    for (const k of keys) {
      if (second.get(k)!.owner !== victim.id) continue;
      failedOver++;
      expect(third.get(k)!.token, k).toBeGreaterThan(second.get(k)!.token);
    }
    expect(failedOver).toBeGreaterThan(0);
    const states = await Promise.all(nodes.filter((n) => n !== victim).map((n) => n.state()));
    const epochs = states.map((s) => s.stats.epochs);
    const taken = epochs.reduce((s, e) => s + e.taken, 0);
    const ops = epochs.reduce((s, e) => s + e.kvOps, 0);
    console.log(
      `[epochs] ${moved} keys moved on join, ${failedOver} failed over; survivors took ${taken} epochs with ${ops} KV operations (${(ops / Math.max(1, taken)).toFixed(2)} per acquisition), ${epochs.reduce((s, e) => s + e.conflicts, 0)} conflicts`,
    );
    expect(epochs.every((e) => e.failures === 0)).toBe(true);
  });

  it("a store-backed entity type writes its token into every stored entry", async () => {
    const srv = await NatsServer.start({ jetstream: true });
    cleanup.push(() => srv.close());
    const cluster = "ep2";
    const nodes = [
      await spawn(srv.url, cluster, "s0", "epstore"),
      await spawn(srv.url, cluster, "s1", "epstore"),
    ];
    const c = await client(srv.url, cluster);
    await waitFor(() => c.node.members().length === 2);
    const store = await bucket(srv.url, "epstore");
    const packr = new Packr({ useRecords: false, mapsAsObjects: true });
    const storedAcq = async (k: string) => {
      const e = await store.get(`storedcounter.${Buffer.from(k).toString("base64url")}`);
      return (packr.unpack(e!.value) as { acq?: number; ver: number }).acq;
    };
    const keys = Array.from({ length: 20 }, (_, i) => `s${i}`);
    const before = new Map<string, { token: number; owner: string }>();
    for (const k of keys) {
      const [n, token] = await c.ref(StoredCounter, k).add();
      expect(n).toBe(1);
      expect(await storedAcq(k), k).toBe(token);
      before.set(k, { token, owner: c.node.place(k)! });
    }
    const victim = nodes[0]!;
    await victim.kill("SIGKILL");
    await waitFor(() => !c.node.members().includes(victim.id), { timeout: 10_000 });
    await sleep(1000);
    let failedOver = 0;
    for (const k of keys) {
      const [n, token] = await c.ref(StoredCounter, k).add();
      // The store had the acknowledged write: the new owner continues from it.
      expect(n, k).toBe(2);
      expect(await storedAcq(k), k).toBe(token);
      if (before.get(k)!.owner === victim.id) {
        failedOver++;
        expect(token, k).toBeGreaterThan(before.get(k)!.token);
      }
    }
    expect(failedOver).toBeGreaterThan(0);
  });
});
