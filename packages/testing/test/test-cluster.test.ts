// TestCluster on the simulated bus: calls drive the virtual clock, and join, leave, crash,
// pause and partition behave like the real events they stand for.
import { Entity, InvalidRequestError, memoryStore, NoLiveMemberError } from "@keyhold/actors";
import { InvalidArgumentError, InvalidOptionError } from "@keyhold/core";
import { TestCluster, TestClusterTimeoutError } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";

class Tally extends Entity<{ n: number }> {
  static readonly type = "tally";
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
  get() {
    return this.state.n;
  }
}

class Stuck extends Entity<object> {
  static readonly type = "stuck";
  initialState() {
    return {};
  }
  hang(): Promise<never> {
    return new Promise(() => {});
  }
}

class Kept extends Entity<{ n: number }> {
  static readonly type = "kept";
  static readonly replicas = 3;
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
}

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

/** A key the node `id` owns in the client's view. */
function keyOwnedBy(c: TestCluster, id: string): string {
  for (let i = 0; i < 10_000; i++) if (c.ownerOf(`k${i}`) === id) return `k${i}`;
  throw new Error(`no key owned by ${id}`);
}

describe("TestCluster on the simulated bus", () => {
  it("starts N nodes and a client that all see each other, and routes calls by key", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Tally] });
    expect(cluster.mode).toBe("sim");
    expect(cluster.running()).toEqual(["node-1", "node-2", "node-3"]);
    for (const n of cluster.nodes) expect(n.sharding.node.members()).toEqual(["node-1", "node-2", "node-3"]);
    const t0 = cluster.now();
    for (let i = 0; i < 30; i++) expect(await cluster.ref(Tally, `t${i}`).add(i)).toBe(i);
    expect(await cluster.ref(Tally, "t7").add(1)).toBe(8);
    expect(cluster.now()).toBeGreaterThan(t0); // time moved only because the calls drove it
    const known = cluster.nodes.map((n) => n.sharding.stats().host.known);
    expect(known.reduce((a, b) => a + b, 0)).toBe(30);
    expect(known.filter((k) => k > 0).length).toBe(3);
  });

  it("is deterministic: the same steps give the same virtual times and placements", async () => {
    const trace = async () => {
      const c = await TestCluster.start({ nodes: 3, entities: [Tally], seed: 7 });
      try {
        const out: (string | number | undefined)[] = [];
        for (let i = 0; i < 10; i++)
          out.push(await c.ref(Tally, `d${i}`).add(1), c.ownerOf(`d${i}`), c.now());
        await c.crash("node-2");
        await c.converge();
        out.push(c.now(), await c.ref(Tally, "d1").add(1));
        return out;
      } finally {
        await c.close();
      }
    };
    expect(await trace()).toEqual(await trace());
  });

  it("join and graceful leave move entities with their state", async () => {
    cluster = await TestCluster.start({ nodes: 2, entities: [Tally] });
    for (let i = 0; i < 20; i++) await cluster.ref(Tally, `j${i}`).add(10);
    const joined = await cluster.join();
    expect(joined.id).toBe("node-3");
    const moved = Array.from({ length: 20 }, (_, i) => `j${i}`).filter(
      (k) => cluster?.ownerOf(k) === "node-3",
    );
    expect(moved.length).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) expect(await cluster.ref(Tally, `j${i}`).get()).toBe(10);
    await cluster.leave("node-1");
    expect(cluster.node("node-1").state).toBe("left");
    expect(cluster.running()).toEqual(["node-2", "node-3"]);
    for (let i = 0; i < 20; i++) expect(await cluster.ref(Tally, `j${i}`).get()).toBe(10);
  });

  it("crash loses unreplicated state after the lease expires; replicas keep it", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Tally, Kept] });
    const key = keyOwnedBy(cluster, "node-2");
    await cluster.ref(Tally, key).add(5);
    await cluster.ref(Kept, key).add(5);
    await cluster.crash("node-2");
    expect(cluster.node("node-2").state).toBe("crashed");
    // Until the lease runs out the client still routes to node-2.
    expect(cluster.ownerOf(key)).toBe("node-2");
    await cluster.advance(cluster.ttlMs + cluster.heartbeatMs);
    await cluster.converge();
    expect(cluster.ownerOf(key)).not.toBe("node-2");
    expect(await cluster.ref(Tally, key).add(1)).toBe(1);
    expect(await cluster.ref(Kept, key).add(1)).toBe(6);
  });

  it("a store keeps state across a crash", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Tally], node: { store: memoryStore() } });
    const key = keyOwnedBy(cluster, "node-1");
    await cluster.ref(Tally, key).add(3);
    await cluster.crash("node-1");
    await cluster.converge();
    expect(await cluster.ref(Tally, key).add(1)).toBe(4);
  });

  it("a paused node runs nothing until resumed; its peers drop it after the lease", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Tally] });
    const paused = cluster.node("node-3");
    const heartbeats = () => paused.sharding.node.stats();
    const before = JSON.stringify(heartbeats());
    cluster.pause("node-3");
    expect(paused.state).toBe("paused");
    await cluster.advance(cluster.ttlMs * 2);
    expect(JSON.stringify(heartbeats())).toBe(before); // not a single timer or message ran
    await cluster.converge();
    expect(cluster.node("node-1").sharding.node.members()).toEqual(["node-1", "node-2"]);
    cluster.resume("node-3");
    await cluster.converge();
    expect(cluster.node("node-1").sharding.node.members()).toEqual(["node-1", "node-2", "node-3"]);
    expect(JSON.stringify(heartbeats())).not.toBe(before);
  });

  it("a partition splits the views; healing joins them again", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Tally] });
    cluster.partition(["node-1", "node-2"], ["node-3"]);
    await cluster.converge();
    expect(cluster.node("node-3").sharding.node.members()).toEqual(["node-3"]);
    expect(cluster.node("node-1").sharding.node.members()).toEqual(["node-1", "node-2"]);
    expect(cluster.client.node.members()).toEqual(["node-1", "node-2"]);
    cluster.heal();
    await cluster.converge();
    expect(cluster.node("node-3").sharding.node.members()).toEqual(["node-1", "node-2", "node-3"]);
  });

  it("with every node gone a call fails with NoLiveMemberError, in virtual time", async () => {
    cluster = await TestCluster.start({ nodes: 1, entities: [Tally] });
    await cluster.leave("node-1");
    const err = await cluster
      .ref(Tally, "x")
      .ask("add", [1], { timeout: 1_000 })
      .catch((e: unknown) => e);
    expect(cluster.client.node.members()).toEqual([]);
    expect(err).toBeInstanceOf(NoLiveMemberError);
  });

  it("a call that never settles and a cluster that never converges fail with TestClusterTimeoutError", async () => {
    cluster = await TestCluster.start({ nodes: 2, entities: [Stuck], driveLimitMs: 2_000 });
    const t0 = cluster.now();
    const err = await cluster
      .ref(Stuck, "s")
      .ask("hang", [], { timeout: 3_600_000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TestClusterTimeoutError);
    expect((err as TestClusterTimeoutError).code).toBe("KH_TEST_TIMEOUT");
    expect(cluster.now() - t0).toBeGreaterThanOrEqual(2_000);
    expect(cluster.now() - t0).toBeLessThan(3_000);
    cluster.pause("node-2");
    const late = await cluster.converge({ timeoutMs: 50 }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(TestClusterTimeoutError);
    expect(String(late)).toMatch(/node-1 sees \[node-1, node-2\], expected \[node-1\]/);
  });

  it("validates its options and arguments", async () => {
    await expect(TestCluster.start({ entities: [] })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(TestCluster.start({ entities: [Tally], nodes: -1 })).rejects.toThrow(/`nodes`/);
    await expect(TestCluster.start({ entities: [Tally], heartbeatMs: 5 })).rejects.toThrow(/`heartbeatMs`/);
    await expect(TestCluster.start({ entities: [Tally], nats: "yes" as never })).rejects.toThrow(/`nats`/);
    await expect(TestCluster.start({ entities: [Tally], driveLimitMs: 0 })).rejects.toThrow(/`driveLimitMs`/);
    cluster = await TestCluster.start({ nodes: 1, entities: [Tally] });
    await expect(cluster.crash("node-9")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(cluster.join("node-1")).rejects.toThrow(/not used/);
    await expect(cluster.join("client")).rejects.toThrow(/not used/);
    await expect(cluster.join("bad id")).rejects.toThrow(/`nodeId`/);
    expect(() => cluster?.resume("node-1")).toThrow(/paused node/);
    await expect(cluster.advance(-1)).rejects.toThrow(/`ms`/);
    expect(() => cluster?.ref(Tally, "")).toThrow(InvalidRequestError);
  });
});
