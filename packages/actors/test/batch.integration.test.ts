// Batching per destination against a real nats-server: a burst of asks from a client travels in
// far fewer NATS messages than asks (counted by the server itself), a burst larger than a small
// max_payload is split into messages the server accepts, and a node speaking another wire
// protocol is refused at join.
import { Entity, Sharding } from "@keyhold/actors";
import { ConfigMismatchError, ShardNode, silentLogger } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import { describe, expect, it } from "vitest";

class Tally extends Entity<{ n: number }> {
  static readonly type = "tally";
  static readonly readOnly = ["get"] as const;
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
  echo(x: string) {
    return x;
  }
}

const TIMINGS = { heartbeatMs: 200, ttlMs: 1000 } as const;

async function inMsgs(server: NatsServer): Promise<number> {
  const res = await fetch(`${server.monitorUrl}/varz`);
  return ((await res.json()) as { in_msgs: number }).in_msgs;
}

async function pair(server: NatsServer, cluster: string) {
  const node = await Sharding.start({
    servers: server.url,
    cluster,
    entities: [Tally],
    logger: silentLogger,
    ...TIMINGS,
  });
  const client = await Sharding.connect({
    servers: server.url,
    cluster,
    entities: [Tally],
    logger: silentLogger,
    ...TIMINGS,
  });
  await waitFor(() => client.node.members().length === 1, { message: "the client sees the node" });
  return { node, client };
}

describe("batching over a real nats-server", () => {
  it("a burst of 2,000 asks travels in far fewer NATS messages than asks, every answer right", async () => {
    await using server = await NatsServer.start();
    const { node, client } = await pair(server, "batch-count");
    try {
      const keys = Array.from({ length: 2_000 }, (_, i) => `t${i}`);
      // Warm up: every partition served and every entity live, so the burst below is not retried.
      await Promise.all(keys.map((k) => client.ref(Tally, k).add(0)));
      const msgs0 = await inMsgs(server);
      const retries0 = client.stats().router.retries;
      const before = client.stats().batches;
      const results = await Promise.all(keys.map((k, i) => client.ref(Tally, k).add(i)));
      expect(results).toEqual(keys.map((_, i) => i));
      const sent = client.stats().batches;
      // One entry per attempt: every ask, plus its retries if any was retried.
      expect(sent.entries - before.entries).toBe(2_000 + client.stats().router.retries - retries0);
      const batches = sent.batches - before.batches;
      // Unbatched, that is 2,000 requests and 2,000 replies (plus heartbeats).
      const msgs = (await inMsgs(server)) - msgs0;
      expect(batches).toBeLessThan(100);
      expect(msgs).toBeLessThan(400);
      expect(node.stats().batches.replies).toBeGreaterThanOrEqual(2_000);
      expect(node.stats().batches.replyBatches).toBeLessThan(400);
      // Reads and writes in one burst: each read after its write (same key, same batch) sees it.
      const mixed = await Promise.all(
        keys.slice(0, 200).flatMap((k) => [client.ref(Tally, k).add(1), client.ref(Tally, k).get()]),
      );
      for (let i = 0; i < 200; i++) expect(mixed[2 * i]).toBe(mixed[2 * i + 1]);
    } finally {
      await client.close();
      await node.close();
    }
  }, 60_000);

  it("a burst larger than max_payload is split into messages the server accepts", async () => {
    await using server = await NatsServer.start({ config: { max_payload: 64 * 1024 } });
    const { node, client } = await pair(server, "batch-split");
    try {
      const blob = "y".repeat(4_000);
      const before = client.stats().batches.batches;
      const got = await Promise.all(
        Array.from({ length: 100 }, (_, i) => client.ref(Tally, `s${i}`).echo(`${i}:${blob}`)),
      );
      expect(got.map((g) => g.length)).toEqual(Array.from({ length: 100 }, (_, i) => `${i}:`.length + 4_000));
      // 400 KB of asks under a 60 KB limit: at least 7 batches, none refused, nothing retried.
      expect(client.stats().batches.batches - before).toBeGreaterThanOrEqual(7);
      expect(client.stats().router.retries).toBe(0);
      expect(client.stats().router.failed).toBe(0);
    } finally {
      await client.close();
      await node.close();
    }
  }, 60_000);

  it("a node speaking another wire protocol is refused at join", async () => {
    await using server = await NatsServer.start();
    const node = await Sharding.start({
      servers: server.url,
      cluster: "batch-proto",
      entities: [Tally],
      logger: silentLogger,
      ...TIMINGS,
    });
    try {
      const err = await ShardNode.start({
        servers: server.url,
        cluster: "batch-proto",
        logger: silentLogger,
        protocol: "keyhold-actors/1+batch/0",
        ...TIMINGS,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigMismatchError);
      expect(String(err)).toContain("wire protocol");
    } finally {
      await node.close();
    }
  }, 60_000);
});
