// `leases: "jetstream"` against a real single nats-server: the mode is resolved and checked at
// start, the heartbeat stream has the documented shape, the own lease is renewed only by the
// stream's acknowledgements (a sealed stream still echoes every heartbeat, yet the node fences
// within L of its last acknowledged send), and it fails clearly without JetStream.
import {
  ConfigMismatchError,
  heartbeatStreamName,
  JetStreamUnavailableError,
  leaseMs,
  ShardNode,
  silentLogger,
} from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";

const LEASE = { heartbeatMs: 200, ttlMs: 1000, skewMs: 500 } as const;
const L = leaseMs(LEASE);

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

async function node(servers: string, cluster: string, id: string, extra: Record<string, unknown> = {}) {
  const n = await ShardNode.start({ servers, cluster, nodeId: id, ...LEASE, logger: silentLogger, ...extra });
  cleanup.push(() => n.close());
  return n;
}

describe("leases acknowledged by JetStream, one server", () => {
  it("renews only from PubAcks: a sealed stream still echoes, yet the node fences within L", async () => {
    const server = await NatsServer.start({ jetstream: true });
    cleanup.push(() => server.close());
    const a = await node(server.url, "jsl1", "a", { leases: "jetstream" });
    const b = await node(server.url, "jsl1", "b"); // auto: the account has JetStream
    expect([a.leaseMode, b.leaseMode]).toEqual(["jetstream", "jetstream"]);
    await waitFor(() => a.members().length === 2 && b.members().length === 2, { timeout: 5000 });

    const nc = await connect({ servers: server.url });
    cleanup.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(heartbeatStreamName("jsl1"));
    expect(info.config.storage).toBe("memory");
    expect(info.config.max_msgs_per_subject).toBe(1);
    expect(info.config.num_replicas).toBe(1);
    expect(info.config.subjects).toEqual(["keyhold.jsl1.hb.*"]);
    await waitFor(() => a.leaseStats().heartbeatsAcked >= 3, { timeout: 5000 });
    expect(info.state.num_subjects).toBe(2); // one stored heartbeat per member

    // Seal the stream: publishes are refused, core subscribers still hear every heartbeat.
    const acceptedBefore = a.stats().heartbeatsAccepted;
    const sealedAt = performance.now();
    await jsm.streams.update(info.config.name, { ...info.config, sealed: true } as never);
    await waitFor(() => a.fenced && b.fenced, { timeout: 5000, interval: 5 });
    const fencedAfter = performance.now() - sealedAt;
    expect(a.stats().heartbeatsAccepted, "echoes kept coming").toBeGreaterThan(acceptedBefore);
    expect(a.leaseStats().heartbeatAckFailures).toBeGreaterThan(0);
    // The last acknowledged heartbeat was sent before the seal: fenced within L (plus timer slack).
    expect(fencedAfter).toBeLessThan(L + 150);
    console.log(`[jsl] sealed stream: fenced ${fencedAfter.toFixed(0)} ms after the seal (L = ${L} ms)`);

    // Delete it: the next publish finds no stream, the node makes it again and unfences.
    await jsm.streams.delete(info.config.name);
    await waitFor(() => !a.fenced && !b.fenced && a.members().length === 2, { timeout: 10_000 });
    expect(a.leaseValid()).toBe(true);
  });

  it("a paused server: no PubAck, the node fences within L of its last acknowledged send", async () => {
    const server = await NatsServer.start({ jetstream: true });
    cleanup.push(() => server.close());
    const a = await node(server.url, "jsl2", "a", {
      leases: "jetstream",
      natsOptions: { reconnectTimeWait: 100 },
    });
    await waitFor(() => a.leaseStats().heartbeatsAcked >= 2, { timeout: 5000 });
    process.kill(server.pid, "SIGSTOP");
    const stoppedAt = performance.now();
    try {
      await waitFor(() => !a.leaseValid(), { timeout: 5000, interval: 5 });
      expect(performance.now() - stoppedAt).toBeLessThan(L + 50);
      await waitFor(() => a.fenced, { timeout: 5000 });
    } finally {
      process.kill(server.pid, "SIGCONT");
    }
    await waitFor(() => !a.fenced && a.leaseValid(), { timeout: 15_000 });
  });

  it("modes never mix, and jetstream without JetStream fails at start", async () => {
    const js = await NatsServer.start({ jetstream: true });
    cleanup.push(() => js.close());
    await node(js.url, "jsl3", "a", { leases: "jetstream" });
    const mixed = await node(js.url, "jsl3", "b", { leases: "echo" }).catch((e: unknown) => e);
    expect(mixed).toBeInstanceOf(ConfigMismatchError);
    const m = mixed as ConfigMismatchError;
    expect(m.differences).toEqual([{ setting: "leases", ours: "echo", theirs: "jetstream" }]);

    const plain = await NatsServer.start();
    cleanup.push(() => plain.close());
    const err = await node(plain.url, "jsl4", "a", { leases: "jetstream" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JetStreamUnavailableError);
    expect((err as JetStreamUnavailableError).code).toBe("KH_JETSTREAM_UNAVAILABLE");
    expect((err as Error).message).toMatch(/leases: "jetstream".*JetStream/);
    const auto = await node(plain.url, "jsl4", "b");
    expect(auto.leaseMode).toBe("echo");
  });
});
