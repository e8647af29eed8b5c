// The lease mode against a NATS cluster whose JetStream cannot answer yet: two of three servers
// down, so the meta group has no quorum, as while a loaded cluster still elects its meta leader
// at start. The server a node connects to advertises JetStream, so `leases: "auto"` must wait
// for its API and take JetStream leases, not settle for echo leases (which silently drop the
// NATS-split guarantee). When the API stays silent past the wait, "auto" says so in a warning
// and "jetstream" fails with a clear error. An account the server refuses JetStream to is an
// answer, not silence: no wait; so is a server whose INFO does not advertise JetStream.
import {
  heartbeatStreamName,
  JETSTREAM_READY_MS,
  JETSTREAM_RETRY_MS,
  JetStreamUnavailableError,
  type Logger,
  ShardNode,
} from "@keyhold/core";
import { NatsCluster, NatsServer } from "@keyhold/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterEach, expect, it } from "vitest";

const LEASE = { heartbeatMs: 200, ttlMs: 1000, skewMs: 500 } as const;
// The bounds follow the wait (jetstream-ready.ts). A test may see two waits one after the other
// (the account API, then the heartbeat stream), plus a cluster's start and restarts.
const TEST_MS = 2 * JETSTREAM_READY_MS + 30_000;
// "No wait": well under one wait, with room for a loaded machine's start.
const AT_ONCE_MS = JETSTREAM_READY_MS / 4;

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const noop = () => {};
  return { warnings, debug: noop, info: noop, error: noop, warn: (m: string) => warnings.push(m) };
}

async function startNode(url: string, cluster: string, id: string, extra: Record<string, unknown>) {
  const n = await ShardNode.start({ servers: url, cluster, nodeId: id, ...LEASE, ...extra });
  cleanup.push(() => n.close());
  return n;
}

it(
  '"auto" waits for a server that advertises JetStream while its meta group has no leader',
  async () => {
    const cluster = await NatsCluster.start(3, { jetstream: true });
    cleanup.push(() => cluster.close());
    await cluster.stop(1);
    await cluster.stop(2);
    const logger = recordingLogger();
    const started = Date.now();
    const starting = startNode(cluster.urls[0]!, "jsready1", "a", { leases: "auto", logger });
    await new Promise((r) => setTimeout(r, 1000));
    // Both at once: once the meta group has its quorum back, nats-server's raft still takes its
    // election timeout (4-9 s) to elect a leader, and the node waits JETSTREAM_READY_MS in all (a
    // CI run that restarted them one after the other, 2 s in, saw "echo" under load with 10 s).
    await Promise.all([cluster.restart(1), cluster.restart(2)]);
    const node = await starting;
    expect(node.leaseMode, logger.warnings.join("\n")).toBe("jetstream");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(logger.warnings.filter((w) => /echo leases/.test(w))).toEqual([]);
    const nc = await connect({ servers: cluster.urls[0]! });
    cleanup.push(() => nc.close());
    const info = await (await jetstreamManager(nc)).streams.info(heartbeatStreamName("jsready1"));
    expect(info.config.subjects.length).toBe(1);
  },
  TEST_MS,
);

it(
  'past the wait, "auto" takes echo leases with a warning and "jetstream" fails clearly',
  async () => {
    const cluster = await NatsCluster.start(3, { jetstream: true });
    cleanup.push(() => cluster.close());
    await cluster.stop(1);
    await cluster.stop(2);
    const logger = recordingLogger();
    const started = Date.now();
    const [auto, strict] = await Promise.allSettled([
      startNode(cluster.urls[0]!, "jsready2", "a", { leases: "auto", logger }),
      startNode(cluster.urls[0]!, "jsready3", "b", { leases: "jetstream", logger: recordingLogger() }),
    ]);
    // Both asked for the whole wait, not once: the last ask failed less than a retry before its end.
    expect(Date.now() - started).toBeGreaterThanOrEqual(JETSTREAM_READY_MS - JETSTREAM_RETRY_MS);
    expect(auto.status).toBe("fulfilled");
    expect(auto.status === "fulfilled" && auto.value.leaseMode).toBe("echo");
    expect(logger.warnings.some((w) => /advertises JetStream.*echo leases/.test(w))).toBe(true);
    expect(strict.status).toBe("rejected");
    const err = strict.status === "rejected" ? strict.reason : undefined;
    expect(err).toBeInstanceOf(JetStreamUnavailableError);
    expect((err as Error).message).toMatch(/leases: "jetstream".*did not answer/);
  },
  TEST_MS,
);

it(
  "an account without JetStream on a server that has it is an answer: no wait, no warning",
  async () => {
    // The server advertises JetStream to every account; B's API requests get "not enabled for account".
    const server = await NatsServer.start({
      jetstream: true,
      config: {
        accounts: {
          A: { jetstream: "enabled", users: [{ user: "a", password: "a" }] },
          B: { users: [{ user: "b", password: "b" }] },
        },
      },
    });
    cleanup.push(() => server.stop());
    const logger = recordingLogger();
    const natsOptions = { user: "b", pass: "b" };
    const started = Date.now();
    const auto = await startNode(server.url, "jsready4", "a", { leases: "auto", logger, natsOptions });
    expect(auto.leaseMode).toBe("echo");
    expect(logger.warnings).toEqual([]);
    await expect(
      startNode(server.url, "jsready5", "b", { leases: "jetstream", logger: recordingLogger(), natsOptions }),
    ).rejects.toThrow(/not enabled for account/i);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
  },
  TEST_MS,
);

it(
  'a server whose INFO does not advertise JetStream: "auto" takes echo leases at once, with no request',
  async () => {
    const server = await NatsServer.start({ jetstream: false });
    cleanup.push(() => server.stop());
    const logger = recordingLogger();
    const started = Date.now();
    const auto = await startNode(server.url, "jsready6", "a", { leases: "auto", logger });
    expect(auto.leaseMode).toBe("echo");
    // No request either: one unanswered would log "advertises JetStream but its API did not answer".
    expect(logger.warnings).toEqual([]);
    // "jetstream" is asked once, not for the whole wait.
    await expect(
      startNode(server.url, "jsready7", "b", { leases: "jetstream", logger: recordingLogger() }),
    ).rejects.toBeInstanceOf(JetStreamUnavailableError);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
  },
  TEST_MS,
);
