// Two clusters, "orders" and "billing", on one nats-server: with an account each (the how-to's
// configuration) or with per-cluster users in one account, neither sees the other's members or
// messages, checked by membership, by asks, and by a subscription on ">".
import type { Sharding } from "@keyhold/actors";
import { NatsServer, waitFor } from "@keyhold/testing";
import { connect, type Msg } from "@nats-io/transport-node";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { Counter } from "../fixtures/entities.js";
import {
  connectClient,
  credentials,
  docConfig,
  forCluster,
  startNode,
  violations,
  withWatcher,
} from "./support.js";

const packr = new Packr({ useRecords: false });
type Config = Record<string, unknown>;
type Accounts = Record<string, { users: unknown[] }>;

/** Both clusters' accounts of the how-to's configuration, billing's made from orders'. */
async function twoAccounts(): Promise<Config> {
  const orders = await docConfig("accounts");
  const billing = forCluster(orders, "orders", "billing");
  return { accounts: { ...(orders.accounts as Accounts), ...(billing.accounts as Accounts) } };
}

/** Both clusters' users in a single account: only their subject permissions keep them apart. */
async function oneAccount(): Promise<Config> {
  const both = (await twoAccounts()).accounts as Accounts;
  return { accounts: { APPS: { users: Object.values(both).flatMap((a) => a.users) } } };
}

/** Starts two nodes and a client per cluster; `ids` are the node ids, per cluster. */
async function startClusters(url: string, config: Config) {
  const started: { cluster: string; nodes: Sharding[]; client: Sharding }[] = [];
  for (const cluster of ["orders", "billing"]) {
    const natsOptions = credentials(config, `${cluster}-node`);
    const nodes = [
      await startNode(url, cluster, { nodeId: `${cluster}-1`, natsOptions }),
      await startNode(url, cluster, { nodeId: `${cluster}-2`, natsOptions }),
    ];
    const client = await connectClient(url, cluster, {
      natsOptions: { ...credentials(config, `${cluster}-client`), inboxPrefix: `_INBOX_${cluster}_client` },
    });
    started.push({ cluster, nodes, client });
  }
  return {
    started,
    async [Symbol.asyncDispose]() {
      for (const s of started) await Promise.all([s.client.close(), ...s.nodes.map((n) => n.close())]);
    },
  };
}

/** Subjects, and the node ids named in membership messages, seen by a ">" subscription. */
function watch(msgs: Msg[]) {
  const subjects = new Set(msgs.map((m) => m.subject.split(".").slice(0, 3).join(".")));
  const ids = new Set<string>();
  for (const m of msgs) {
    if (!m.subject.startsWith("keyhold.")) continue;
    const body = packr.unpack(m.data) as { id?: unknown; from?: unknown };
    for (const id of [body.id, body.from])
      if (typeof id === "string" && /^(orders|billing)-/.test(id)) ids.add(id);
  }
  return { subjects, ids };
}

async function exercise(url: string, config: Config) {
  await using clusters = await startClusters(url, config);
  for (const { nodes, client, cluster } of clusters.started) {
    await waitFor(
      () => client.node.members().length === 2 && nodes.every((n) => n.node.members().length === 2),
    );
    expect([...client.node.members()].sort()).toEqual([`${cluster}-1`, `${cluster}-2`]);
  }
  // The same keys in both clusters are different entities.
  const [orders, billing] = clusters.started;
  for (let i = 0; i < 12; i++) {
    expect(await orders!.client.ref(Counter, `same-${i}`).add(1)).toBe(1);
    expect(await billing!.client.ref(Counter, `same-${i}`).add(10)).toBe(10);
    expect(await orders!.client.ref(Counter, `same-${i}`).get()).toBe(1);
  }
  // Let several heartbeat periods pass, then check every view again.
  await new Promise((r) => setTimeout(r, 500));
  for (const { nodes, cluster } of clusters.started) {
    for (const n of nodes) expect([...n.node.members()].sort()).toEqual([`${cluster}-1`, `${cluster}-2`]);
  }
}

describe("two clusters on one server", () => {
  it("with an account each: a '>' subscription in one account sees nothing of the other", async () => {
    const config = withWatcher(await twoAccounts(), "ORDERS");
    await using server = await NatsServer.start({ config });
    const watcher = await connect({ servers: server.url, ...credentials(config, "watcher") });
    const msgs: Msg[] = [];
    watcher.subscribe(">", { callback: (_e, m) => void msgs.push(m) });
    await watcher.flush();

    await exercise(server.url, config);
    await watcher.flush();

    const { subjects, ids } = watch(msgs);
    // It saw the orders cluster at work: membership, asks and their replies.
    for (const s of ["keyhold.orders.hb", "keyhold.orders.node", "_INBOX_orders_client.*"]) {
      expect([...subjects].some((x) => x === s || x.startsWith(s.replace("*", "")))).toBe(true);
    }
    expect([...subjects].filter((s) => s.includes("billing"))).toEqual([]);
    expect([...ids].sort()).toEqual(["orders-1", "orders-2"]);
    await watcher.close();
  });

  it("with per-cluster users in one account: each cluster's users are refused the other's subjects", async () => {
    const config = withWatcher(await oneAccount(), "APPS");
    await using server = await NatsServer.start({ config });
    const watcher = await connect({ servers: server.url, ...credentials(config, "watcher") });
    const msgs: Msg[] = [];
    watcher.subscribe(">", { callback: (_e, m) => void msgs.push(m) });
    await watcher.flush();

    await exercise(server.url, config);

    // An orders node user reaching into billing's subjects is refused.
    const intruder = await connect({ servers: server.url, ...credentials(config, "orders-node") });
    const refused = violations(intruder);
    intruder.publish("keyhold.billing.hb", packr.pack({ v: 1, k: "hb", id: "orders-1" }));
    intruder.publish(
      "keyhold.billing.node.billing-1",
      packr.pack({ v: 1, k: "pull", p: 0, from: "orders-1" }),
    );
    intruder.subscribe("keyhold.billing.>");
    await intruder.flush();
    await waitFor(() => refused.length === 3);
    expect(refused.sort()).toEqual([
      "publish keyhold.billing.hb",
      "publish keyhold.billing.node.billing-1",
      "subscription keyhold.billing.>",
    ]);
    await watcher.flush();

    // One account: the watcher sees both clusters, each on its own subjects with its own members.
    const byCluster = (c: string) => watch(msgs.filter((m) => m.subject.startsWith(`keyhold.${c}.`)));
    expect([...byCluster("orders").ids].sort()).toEqual(["orders-1", "orders-2"]);
    expect([...byCluster("billing").ids].sort()).toEqual(["billing-1", "billing-2"]);
    await Promise.all([watcher.close(), intruder.close()]);
  });
});
