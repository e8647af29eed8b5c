// TestCluster on an embedded nats-server: the same calls as on the simulated bus, in real time.
import { Entity } from "@keyhold/actors";
import { InvalidArgumentError } from "@keyhold/core";
import { NatsServer, TestCluster } from "@keyhold/testing";
import { afterEach, expect, it } from "vitest";

class Tally extends Entity<{ n: number }> {
  static readonly type = "tally";
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

it("runs on a nats-server it starts: routing, join, leave, crash and pause", async () => {
  cluster = await TestCluster.start({ nodes: 3, entities: [Tally], nats: true });
  expect(cluster.mode).toBe("nats");
  expect(cluster.clock).toBeUndefined();
  for (let i = 0; i < 20; i++) expect(await cluster.ref(Tally, `n${i}`).add(2)).toBe(2);
  const known = cluster.nodes.map((n) => n.sharding.stats().host.known);
  expect(known.reduce((a, b) => a + b, 0)).toBe(20);

  await cluster.join();
  expect(cluster.client.node.members()).toEqual(["node-1", "node-2", "node-3", "node-4"]);
  await cluster.leave("node-1");
  for (let i = 0; i < 20; i++) expect(await cluster.ref(Tally, `n${i}`).add(1)).toBe(3);

  const victim = cluster.ownerOf("n3");
  expect(victim).toBeDefined();
  await cluster.crash(victim as string);
  await cluster.converge();
  expect(cluster.client.node.members()).not.toContain(victim);
  expect(await cluster.ref(Tally, "n3").add(1)).toBe(1); // not replicated: starts over

  const paused = cluster.running()[0] as string;
  cluster.pause(paused);
  await cluster.converge(); // the others drop it once its lease runs out
  expect(cluster.client.node.members()).not.toContain(paused);
  cluster.resume(paused);
  await cluster.converge();
  expect(cluster.client.node.members()).toContain(paused);
  expect(() => cluster?.partition([paused])).toThrow(InvalidArgumentError);
});

it("uses a running server given by URL and leaves it running", async () => {
  await using server = await NatsServer.start();
  cluster = await TestCluster.start({ nodes: 2, entities: [Tally], nats: { url: server.url } });
  expect(await cluster.ref(Tally, "u").add(4)).toBe(4);
  await cluster.close();
  cluster = undefined;
  const again = await TestCluster.start({ nodes: 1, entities: [Tally], nats: { url: server.url } });
  try {
    expect(await again.ref(Tally, "u2").add(1)).toBe(1);
  } finally {
    await again.close();
  }
});
