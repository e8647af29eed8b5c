// The node and client users of the how-to's NATS configuration, against a real nats-server:
// the server refuses a client's forged membership messages, and the users' permissions are
// enough for nodes and clients to do all their work.
import { ACTOR_PROTOCOL, Sharding } from "@keyhold/actors";
import { HASH_VERSION, membershipSubjects, silentLogger } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { Counter } from "../fixtures/entities.js";
import {
  CLIENT_INBOX,
  credentials,
  docConfig,
  LEASE,
  Replicated,
  startNode,
  violations,
  withWatcher,
} from "./support.js";

const packr = new Packr({ useRecords: false });
const subjects = membershipSubjects("orders");
// A node's whole config, as a member would announce it (the actors wire protocol included).
const CFG = { ringSize: 64, ...LEASE, hash: HASH_VERSION, protocol: ACTOR_PROTOCOL };
const sorted = (ids: readonly string[]) => [...ids].sort();

describe("the client user", () => {
  it("is refused when it forges heartbeats, leaves, syncs or sync replies, and membership is unchanged", async () => {
    const config = withWatcher(await docConfig("accounts"), "ORDERS");
    await using server = await NatsServer.start({ config });
    const nodeUser = credentials(config, "orders-node");
    await using a = await startNode(server.url, "orders", { nodeId: "node-a", natsOptions: nodeUser });
    await using b = await startNode(server.url, "orders", { nodeId: "node-b", natsOptions: nodeUser });
    await waitFor(() => a.node.members().length === 2 && b.node.members().length === 2);

    // What reaches the cluster's subjects, seen by a user allowed everything in the account.
    const watcher = await connect({ servers: server.url, ...credentials(config, "watcher") });
    const seen: Record<string, unknown>[] = [];
    watcher.subscribe("keyhold.orders.>", { callback: (_e, m) => void seen.push(packr.unpack(m.data)) });
    await watcher.flush();

    const forger = await connect({
      servers: server.url,
      ...credentials(config, "orders-client"),
      inboxPrefix: CLIENT_INBOX,
    });
    const refused = violations(forger);
    const forge = () => {
      const at = Date.now();
      forger.publish(subjects.heartbeat, packr.pack({ v: 1, k: "hb", id: "forged", at, cfg: CFG }));
      forger.publish(subjects.leave, packr.pack({ v: 1, k: "leave", id: "node-a", at }));
      forger.publish(subjects.sync, packr.pack({ v: 1, k: "sync", id: "forged", cfg: CFG }), {
        reply: `${CLIENT_INBOX}.sync`,
      });
      // A table sent straight to a node's reply inbox, as if answering its sync.
      const table = {
        v: 1,
        k: "table",
        id: "forged",
        cfg: CFG,
        leases: [["forged", at]],
        left: [["node-b", at]],
      };
      forger.publish("_INBOX.guessed.0", packr.pack(table));
    };
    forge();
    // Reading what nodes receive is refused as well: their requests, sync requests, others' replies.
    for (const s of ["keyhold.orders.node.*", subjects.sync, "_INBOX.>", ">"]) forger.subscribe(s);
    await forger.flush();

    const expected = [
      `publish ${subjects.heartbeat}`,
      `publish ${subjects.leave}`,
      `publish ${subjects.sync}`,
      "publish _INBOX.guessed.0",
      "subscription keyhold.orders.node.*",
      `subscription ${subjects.sync}`,
      "subscription _INBOX.>",
      "subscription >",
    ];
    await waitFor(() => expected.every((e) => refused.includes(e)), { timeout: 10_000 });
    // Keep forging for several lease periods: a forged heartbeat that got through would show.
    for (let i = 0; i < 10; i++) {
      forge();
      await new Promise((r) => setTimeout(r, LEASE.heartbeatMs));
    }
    await forger.flush();
    await new Promise((r) => setTimeout(r, LEASE.ttlMs));

    expect(sorted(a.node.members())).toEqual(["node-a", "node-b"]);
    expect(sorted(b.node.members())).toEqual(["node-a", "node-b"]);
    expect(a.node.stats().leavesSeen + b.node.stats().leavesSeen).toBe(0);
    expect(a.node.stats().malformed + b.node.stats().malformed).toBe(0);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((m) => m.id === "forged" || m.k === "leave")).toEqual([]);

    // Control: the same heartbeat from a user allowed to publish it does reach the nodes, so
    // the assertions above are about the permissions, not about a message the nodes ignore.
    const trusted = await connect({ servers: server.url, ...nodeUser });
    const beat = setInterval(() => {
      trusted.publish(
        subjects.heartbeat,
        packr.pack({ v: 1, k: "hb", id: "forged", at: Date.now(), cfg: CFG }),
      );
    }, LEASE.heartbeatMs);
    try {
      await waitFor(() => a.node.members().includes("forged"), { timeout: 10_000 });
    } finally {
      clearInterval(beat);
    }
    await Promise.all([watcher.close(), forger.close(), trusted.close()]);
  });
});

describe("the node and client users", () => {
  it("are enough for asks, tells, hand-off and replication, and nodes are never refused", async () => {
    const config = await docConfig("accounts");
    await using server = await NatsServer.start({ config });
    const nodeUser = credentials(config, "orders-node");
    await using a = await startNode(server.url, "orders", { nodeId: "node-a", natsOptions: nodeUser });
    await using b = await startNode(server.url, "orders", { nodeId: "node-b", natsOptions: nodeUser });
    await waitFor(() => a.node.members().length === 2);

    // The client brings its own connection here only so that the test can watch its errors.
    const nc: NatsConnection = await connect({
      servers: server.url,
      ...credentials(config, "orders-client"),
      inboxPrefix: CLIENT_INBOX,
    });
    const refused = violations(nc);
    await using client = await Sharding.connect({
      connection: nc,
      cluster: "orders",
      ...LEASE,
      entities: [Counter, Replicated],
      logger: silentLogger,
    });
    await waitFor(() => client.node.members().length === 2);

    const keys = Array.from({ length: 24 }, (_, i) => `k${i}`);
    for (const k of keys) expect(await client.ref(Counter, k).add(1)).toBe(1);
    for (const k of keys) client.ref(Counter, k).tell("add", 2);
    await waitFor(async () => (await client.ref(Counter, "k0").get()) === 3);
    for (const k of keys) expect(await client.ref(Replicated, k).add(5)).toBe(5);

    // A third node joins: partitions and their state move by pulls on the node subjects.
    await using c = await startNode(server.url, "orders", { nodeId: "node-c", natsOptions: nodeUser });
    await waitFor(() => client.node.members().length === 3 && a.node.members().length === 3);
    // It joins step by step (joinStepPartitions "auto"): the hand-offs below happen at its steps.
    await waitFor(() => c.node.joinFront === undefined, { timeout: 15_000 });
    for (const k of keys) {
      await waitFor(async () => (await client.ref(Counter, k).get()) === 3, { timeout: 15_000 });
      expect(await client.ref(Replicated, k).get()).toBe(5);
    }
    expect(c.stats().handoff.recordsIn).toBeGreaterThan(0);
    const replication = [a, b, c].map((n) => n.stats().replication);
    expect(replication.reduce((n, r) => n + r.writes, 0)).toBeGreaterThan(0);
    expect(replication.reduce((n, r) => n + r.quorumFailures, 0)).toBe(0);
    expect(b.node.stats().syncsMerged + c.node.stats().syncsMerged).toBeGreaterThan(0);

    // A graceful leave under the node user's permissions: its counters survive on the others.
    await b.close();
    await waitFor(() => client.node.members().length === 2);
    for (const k of keys) expect(await client.ref(Counter, k).get()).toBe(3);

    // The client was refused only its own sync: the request and serving other syncs.
    expect([...new Set(refused)].sort()).toEqual([
      `publish ${subjects.sync}`,
      `subscription ${subjects.sync}`,
    ]);
    // Nodes never hit a permission they lack, through start, hand-off, replication and leave.
    expect(server.logs().filter((l) => /Violation/.test(l) && /"orders-node"/.test(l))).toEqual([]);
  });
});
