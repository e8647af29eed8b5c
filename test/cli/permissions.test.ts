// The operator users of the secure-a-cluster how-to, against a real nats-server with the page's
// configuration: the read-only user runs the read commands but cannot drain (the server refuses
// the per-node subject), the drain user can; neither needs _INBOX.>.
import { NatsServer, waitFor } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import { credentials, docConfig, startNode } from "../security/support.js";
import { keyhold } from "./support.js";

function as(user: { user: string; pass: string }, inbox: string, url: string): string[] {
  return ["-s", url, "-c", "orders", "--user", user.user, "--password", user.pass, "--inbox-prefix", inbox];
}

describe("keyhold with the how-to's operator users", () => {
  it("orders-ops reads but cannot drain; orders-drain drains", async () => {
    const config = await docConfig("accounts");
    await using server = await NatsServer.start({ config });
    const nodeUser = credentials(config, "orders-node");
    const admin = { allowDrain: true };
    await using a = await startNode(server.url, "orders", { nodeId: "node-a", natsOptions: nodeUser, admin });
    await using b = await startNode(server.url, "orders", { nodeId: "node-b", natsOptions: nodeUser, admin });
    await waitFor(() => a.node.members().length === 2 && b.node.members().length === 2);

    const ops = as(credentials(config, "orders-ops"), "_INBOX_orders_ops", server.url);
    const members = await keyhold(["members", "--json", ...ops]);
    expect(members.err).toBe("");
    expect(members.code).toBe(0);
    const ids = (JSON.parse(members.out) as { members: { id: string }[] }).members.map((m) => m.id);
    expect(ids.sort()).toEqual(["node-a", "node-b"]);
    expect((await keyhold(["health", ...ops])).code).toBe(0);

    // Without its own inbox prefix the user may not subscribe for the answers.
    const noPrefix = await keyhold(["members", ...ops.slice(0, -2), "--timeout", "500"]);
    expect(noPrefix.code).toBe(1);

    const refused = await keyhold(["drain", "node-a", "--timeout", "500", ...ops]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^keyhold: .*drain request for node "node-a"/);
    expect(a.node.members()).toContain("node-a");

    const drainer = as(credentials(config, "orders-drain"), "_INBOX_orders_drain", server.url);
    const drained = await keyhold(["drain", "node-a", "--json", ...drainer]);
    expect(drained.err).toBe("");
    expect(JSON.parse(drained.out)).toMatchObject({ node: "node-a", draining: true, left: true });
    await waitFor(() => !b.node.members().includes("node-a"));
  });
});
