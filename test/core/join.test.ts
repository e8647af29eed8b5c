// Joining a ring across OS processes over a real nats-server: convergence and agreement on
// placement, observers that track the ring without joining it, and refusal of a mismatched config.
import { ChildStartError, NatsServer, waitFor } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import {
  clusterName,
  expectAgreement,
  expectPartitionsCovered,
  Fleet,
  keys,
  LEASE,
  memberOptions,
  replayOwned,
  SETTLE_MS,
  states,
  TTL_MS,
  waitForMembers,
} from "./support.js";

const IDS = ["n0", "n1", "n2"];

describe("joining a ring of node processes", () => {
  it("three processes converge, agree on 2,000 keys and split the ring exactly", async () => {
    await using server = await NatsServer.start();
    await using fleet = new Fleet();
    const nodes = await fleet.spawnAll(memberOptions(clusterName(), server.url, 3));
    expect(nodes.map((n) => n.id)).toEqual(IDS);

    expectPartitionsCovered(await waitForMembers(nodes, IDS));
    await expectAgreement(nodes, IDS, keys(2000));

    // Replies come over the same IPC channel as events, after them, so by the time state()
    // answers every event that led to it has arrived: the stream must add up to it.
    const views = await states(nodes);
    for (const [i, node] of nodes.entries()) {
      expect(replayOwned(node.events), `${node.id}'s event stream`).toEqual(views[i]!.owned);
    }
  });

  it("an observer process tracks members and placement like a member, but owns nothing", async () => {
    await using server = await NatsServer.start();
    await using fleet = new Fleet();
    const cluster = clusterName();
    const nodes = await fleet.spawnAll(memberOptions(cluster, server.url, 3));
    await waitForMembers(nodes, IDS);

    const observer = await fleet.spawn({
      servers: server.url,
      cluster,
      nodeId: "obs",
      observer: true,
      ...LEASE,
    });
    await waitForMembers([observer], IDS);
    const rounds = (await states(nodes)).map((s) => s.stats.heartbeatsAccepted ?? 0);
    await expectAgreement([...nodes, observer], IDS, keys(2000));

    // Let a few heartbeat rounds pass, so an observer that heartbeated would have been noticed.
    await waitFor(
      async () => (await states(nodes)).every((s, i) => (s.stats.heartbeatsAccepted ?? 0) >= rounds[i]! + 9),
      { timeout: SETTLE_MS, message: "members stopped heartbeating" },
    );
    for (const s of await states(nodes)) expect(s.members).toEqual(IDS);
    const seen = await observer.state();
    expect(seen).toMatchObject({ members: IDS, owned: [], fenced: false });
    expect(seen.stats.heartbeatsSent).toBe(0);
    expect(observer.events.filter((e) => e.event.type === "acquired")).toEqual([]);

    // It follows changes too: a member leaves and the observer places like the two that remain.
    await nodes[2]!.close();
    const rest = nodes.slice(0, 2);
    await waitForMembers([...rest, observer], ["n0", "n1"]);
    await expectAgreement([...rest, observer], ["n0", "n1"], keys(2000));
    expect((await observer.state()).owned).toEqual([]);
  });

  it("a node with another ringSize or ttlMs is refused at start, naming the setting", async () => {
    await using server = await NatsServer.start();
    await using fleet = new Fleet();
    const cluster = clusterName();
    const nodes = await fleet.spawnAll(memberOptions(cluster, server.url, 3));
    await waitForMembers(nodes, IDS);

    const odd = { servers: server.url, cluster, nodeId: "odd", ...LEASE };
    const cases = [
      { options: { ...odd, ringSize: 32 }, says: /ringSize is 32 here but 64/, not: /ttlMs is/ },
      {
        options: { ...odd, ttlMs: 2 * TTL_MS },
        says: new RegExp(`ttlMs is ${2 * TTL_MS} here but ${TTL_MS}`),
        not: /ringSize is/,
      },
    ];
    for (const c of cases) {
      const err: unknown = await fleet.spawn(c.options).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ChildStartError);
      expect(err).toMatchObject({ name: "ConfigMismatchError", code: "KH_CONFIG_MISMATCH" });
      expect((err as Error).message).toMatch(c.says);
      expect((err as Error).message).not.toMatch(c.not);
    }

    // The running members never took the refused nodes in, not even for a few rounds.
    const rounds = (await states(nodes)).map((s) => s.stats.heartbeatsAccepted ?? 0);
    await waitFor(
      async () => (await states(nodes)).every((s, i) => (s.stats.heartbeatsAccepted ?? 0) >= rounds[i]! + 9),
      { timeout: SETTLE_MS, message: "members stopped heartbeating" },
    );
    const views = await states(nodes);
    for (const v of views) expect(v.members).toEqual(IDS);
    expectPartitionsCovered(views);
    expect(
      nodes
        .flatMap((n) => n.events)
        .some((e) => e.event.type === "members" && e.event.joined.includes("odd")),
    ).toBe(false);
  });
});
