// ProxiedNatsCluster on real nats-servers: every route goes through its proxy and nothing routes
// around a cut; a JetStream R3 stream loses quorum on the cut-off side and regains it on heal.
import { ProxiedNatsCluster, waitFor } from "@keyhold/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";

const connections: NatsConnection[] = [];
afterEach(async () => {
  await Promise.allSettled(connections.splice(0).map((nc) => nc.close()));
});

async function client(url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  connections.push(nc);
  return nc;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("ProxiedNatsCluster", () => {
  it("a server cut off from its routes cannot reach the others by any other path, and can again after heal", async () => {
    await using cluster = await ProxiedNatsCluster.start();
    expect(await cluster.routes()).toEqual([
      [1, 2],
      [0, 2],
      [0, 1],
    ]);
    const onA = await client(cluster.urls[0] as string);
    const onC = await client(cluster.urls[2] as string);
    // no_advertise: a client learns no other server to reconnect to behind its proxy's back.
    expect(onC.info?.connect_urls ?? []).toEqual([]);
    const got: string[] = [];
    onA.subscribe("probe.>", {
      callback: (_e, m) => {
        got.push(m.string());
      },
    });
    await onA.flush();
    await waitFor(async () => {
      onC.publish("probe.before", "before");
      await onC.flush();
      await sleep(50);
      return got.includes("before");
    });

    cluster.isolate(2);
    await cluster.waitForIsolated(2);
    // Long enough for gossip-driven implicit routes and explicit route retries (1 s) to try.
    for (let n = 0; n < 12; n++) {
      onC.publish("probe.during", `during-${n}`);
      await sleep(250);
    }
    await onC.flush();
    expect(got.filter((g) => g.startsWith("during"))).toEqual([]);
    const during = await cluster.routes();
    expect(during).toEqual([[1], [0], []]);
    expect(cluster.routeLink(0, 2).stats.refused + cluster.routeLink(1, 2).stats.refused).toBeGreaterThan(0);

    cluster.heal();
    await cluster.waitForRoutes({ timeout: 20_000 });
    await waitFor(async () => {
      onC.publish("probe.after", "after");
      await onC.flush();
      await sleep(50);
      return got.includes("after");
    });
    // Whatever the gossip tried went to the trap, which resets everything it accepts.
    console.log(`implicit routes turned away by the trap: ${cluster.routeAroundAttempts}`);
  });

  it("blackholed routes are dropped by the servers' pings, and come back after heal", async () => {
    await using cluster = await ProxiedNatsCluster.start({ pingIntervalMs: 500, pingMax: 2 });
    const onA = await client(cluster.directUrls[0] as string);
    const onC = await client(cluster.directUrls[2] as string);
    const got: string[] = [];
    onA.subscribe("bh.>", {
      callback: (_e, m) => {
        got.push(m.string());
      },
    });
    await onA.flush();
    cluster.isolate(2, "blackhole");
    expect(cluster.routeLink(0, 2).mode).toBe("blackhole");
    onC.publish("bh.during", "during");
    await onC.flush();
    // The connections stay open at the proxy; the servers close them once pings go unanswered.
    await cluster.waitForIsolated(2, { timeout: 20_000 });
    expect(got).toEqual([]);
    expect(
      cluster.routeLink(0, 2).stats.backwardDropped + cluster.routeLink(0, 2).stats.forwardDropped,
    ).toBeGreaterThan(0);
    cluster.heal();
    await cluster.waitForRoutes({ timeout: 20_000 });
    await waitFor(async () => {
      onC.publish("bh.after", "after");
      await onC.flush();
      await sleep(50);
      return got.includes("after");
    });
    expect(got).not.toContain("during");
  });

  it("a blackholed client link leaves the client connected to nothing until heal", async () => {
    await using cluster = await ProxiedNatsCluster.start({ size: 2 });
    const watcher = await client(cluster.directUrls[1] as string);
    const got: string[] = [];
    watcher.subscribe("c.>", {
      callback: (_e, m) => {
        got.push(m.string());
      },
    });
    await watcher.flush();
    const nc = await client(cluster.urls[0] as string);
    nc.publish("c.1", "1");
    await waitFor(() => got.includes("1"));
    cluster.clientLink(0).blackhole();
    nc.publish("c.2", "2");
    await sleep(500);
    expect(got).not.toContain("2");
    expect(cluster.clientLink(0).stats.forwardDropped).toBeGreaterThan(0);
    cluster.heal();
    // The damaged connection is reset on heal; the client reconnects through the same proxy.
    await waitFor(async () => {
      nc.publish("c.3", "3");
      await sleep(100);
      return got.includes("3");
    });
  });

  it("an R3 JetStream stream loses quorum on the cut-off side and regains it after heal", async () => {
    await using cluster = await ProxiedNatsCluster.start({ jetstream: true });
    const onA = await client(cluster.urls[0] as string);
    const onC = await client(cluster.urls[2] as string);
    await waitFor(
      async () => {
        try {
          const jsm = await jetstreamManager(onA, { timeout: 2_000 });
          await jsm.streams.add({ name: "S", subjects: ["s.>"], num_replicas: 3 });
          return true;
        } catch {
          return false; // the meta group may not have a leader yet
        }
      },
      { timeout: 30_000, message: "R3 stream not created" },
    );
    const jsA = jetstream(onA, { timeout: 2_000 });
    const jsC = jetstream(onC, { timeout: 2_000 });
    await waitFor(
      async () =>
        (await jsC.publish("s.x", "c-before", { msgID: "c-before" }).catch(() => undefined)) !== undefined,
      {
        timeout: 20_000,
      },
    );

    cluster.isolate(2);
    await cluster.waitForIsolated(2);
    // The majority side elects a leader if it lost one and keeps accepting writes.
    await waitFor(
      async () =>
        (await jsA.publish("s.x", "a-during", { msgID: "a-during" }).catch(() => undefined)) !== undefined,
      {
        timeout: 30_000,
        message: "majority side never accepted a write",
      },
    );
    // The cut-off side has no quorum: every attempt over several seconds fails.
    let accepted = 0;
    for (let n = 0; n < 4; n++) {
      if ((await jsC.publish("s.x", `c-during-${n}`).catch(() => undefined)) !== undefined) accepted++;
    }
    expect(accepted).toBe(0);

    cluster.heal();
    await cluster.waitForRoutes({ timeout: 20_000 });
    await waitFor(
      async () =>
        (await jsC.publish("s.x", "c-after", { msgID: "c-after" }).catch(() => undefined)) !== undefined,
      {
        timeout: 30_000,
        message: "cut-off side never regained quorum",
      },
    );
    // Retried publishes carry a message id, so each landed once; nothing the cut-off side
    // tried during the cut was kept (a minority leader's uncommitted entries are discarded).
    const stored: string[] = [];
    await waitFor(
      async () => {
        try {
          const jsm = await jetstreamManager(onA, { timeout: 2_000 });
          const info = await jsm.streams.info("S");
          stored.length = 0;
          for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
            const m = await jsm.streams.getMessage("S", { seq });
            if (m) stored.push(m.string());
          }
          return info.config.num_replicas === 3;
        } catch {
          return false;
        }
      },
      { timeout: 20_000, message: "stream not readable after heal" },
    );
    expect(stored).toEqual(["c-before", "a-during", "c-after"]);
  });
});
