// Integration test for the nats-server launcher: real processes, real clients.

import { NatsCluster, NatsServer, waitFor } from "@keyhold/testing";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";

const connections: NatsConnection[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await Promise.allSettled(connections.splice(0).map((nc) => nc.close()));
  await Promise.allSettled(cleanups.splice(0).map((fn) => fn()));
});

async function client(url: string, opts: { reconnect?: boolean } = {}): Promise<NatsConnection> {
  const nc = await connect({
    servers: url,
    reconnect: opts.reconnect ?? false,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 50,
  });
  connections.push(nc);
  return nc;
}

/** Subscribes and collects payloads as strings; flushes so the interest reached the server. */
async function collect(nc: NatsConnection, subject: string): Promise<string[]> {
  const got: string[] = [];
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      got.push(msg.string());
    },
  });
  await nc.flush();
  return got;
}

describe("NatsServer", () => {
  it("starts on a random port and carries pub/sub", async () => {
    await using srv = await NatsServer.start();
    expect(srv.url).toBe(`nats://127.0.0.1:${srv.port}`);
    expect(srv.monitorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(srv.clusterPort).toBeUndefined();
    expect(srv.running).toBe(true);

    const nc = await client(srv.url);
    const got = await collect(nc, "hello");
    nc.publish("hello", "world");
    await waitFor(() => got.length === 1, { message: "message not delivered" });
    expect(got).toEqual(["world"]);
    expect(srv.logs().some((l) => l.includes("Server is ready"))).toBe(true);
  });

  it("restart keeps the port and a reconnecting client comes back", async () => {
    const srv = await NatsServer.start({ jetstream: true });
    cleanups.push(() => srv.close());
    const port = srv.port;
    const firstPid = srv.pid;

    const nc = await client(srv.url, { reconnect: true });
    const got = await collect(nc, "again");
    let reconnects = 0;
    (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") reconnects++;
    })();

    await srv.restart();
    expect(srv.port).toBe(port);
    expect(srv.pid).not.toBe(firstPid);
    await waitFor(() => reconnects > 0, { message: "client did not reconnect" });

    // The subscription is replayed on reconnect.
    nc.publish("again", "after restart");
    await waitFor(() => got.length === 1, { message: "message after restart not delivered" });
  });

  it("kill() drops client connections", async () => {
    await using srv = await NatsServer.start();
    const nc = await client(srv.url);
    await srv.kill();
    expect(srv.running).toBe(false);
    await nc.closed();
    expect(nc.isClosed()).toBe(true);
  });

  it("close() is idempotent and removes the temp dir", async () => {
    const { access } = await import("node:fs/promises");
    const srv = await NatsServer.start();
    await Promise.all([srv.close(), srv.close()]);
    await srv.close();
    expect(srv.running).toBe(false);
    await expect(access(srv.dir)).rejects.toThrow();
    await expect(srv.restart()).rejects.toThrow(/closed/);
  });

  it("a missing binary is a clear error that names apt-get", async () => {
    await expect(NatsServer.start({ binary: "/nonexistent/nats-server" })).rejects.toThrow(
      /nats-server not found on PATH.*apt-get install -y nats-server/,
    );
  });

  it("a server that fails to start reports its last log lines", async () => {
    // JetStream in a cluster needs routes, so nats-server exits right away with a fatal error.
    const err = await NatsServer.start({
      jetstream: true,
      config: { server_name: "lonely", cluster: { name: "x", listen: "127.0.0.1:-1" } },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/before it was ready[\s\S]*JetStream cluster requires/);
  });
});

describe("NatsCluster", () => {
  it("routes between members, and still does after one is killed and restarted", async () => {
    await using cluster = await NatsCluster.start(3);
    expect(cluster.urls).toHaveLength(3);
    await cluster.waitForRoutes();

    const [url0, , url2] = cluster.urls;
    const sub = await client(url0!);
    const pub = await client(url2!);
    const got = await collect(sub, "routed");
    // Interest propagates over routes asynchronously; keep publishing until it arrives.
    await waitFor(
      async () => {
        pub.publish("routed", "one");
        await pub.flush();
        return got.length > 0;
      },
      { interval: 50, message: "message not routed from server 2 to server 0" },
    );

    await cluster.kill(1);
    await cluster.waitForRoutes();
    const before = got.length;
    pub.publish("routed", "two");
    await waitFor(() => got.length > before, { message: "message not routed after killing server 1" });
    expect(got.at(-1)).toBe("two");

    await cluster.restart(1);
    expect(cluster.servers[1]!.running).toBe(true);
    await cluster.waitForRoutes();
  });

  it("forms a JetStream cluster", async () => {
    await using cluster = await NatsCluster.start(3, { jetstream: true });
    await cluster.waitForRoutes();
    const nc = await client(cluster.urls[0]!);
    // $JS.API.INFO answers once the meta group has a leader.
    await waitFor(
      async () => {
        const reply = await nc.request("$JS.API.INFO", undefined, { timeout: 1_000 });
        return !(reply.json() as { error?: unknown }).error;
      },
      { timeout: 20_000, interval: 250, message: "JetStream cluster never became ready" },
    );
  });
});
