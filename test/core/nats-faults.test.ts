// Node processes riding out NATS itself: members spread over a 3-server cluster, a server
// restart longer than the TTL, and a node cut off from NATS fencing itself.
import { setTimeout as sleep } from "node:timers/promises";
import { NatsCluster, NatsServer, type NodeProcessOptions, waitFor } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import {
  alive,
  clusterName,
  expectAgreement,
  expectPartitionsCovered,
  Fleet,
  HEARTBEAT_MS,
  keys,
  LEASE,
  leftAt,
  memberOptions,
  mostOwned,
  RING_SIZE,
  SETTLE_MS,
  sample,
  states,
  TTL_MS,
  transitions,
  waitForMembers,
} from "./support.js";

const IDS = ["n0", "n1", "n2"];
// Keep each node on the one server it was given: no shuffling, and no learning the other
// servers from the cluster's INFO, so killing a server really cuts its node off.
const PINNED = { noRandomize: true, ignoreClusterUpdates: true };

/** Node i connects only to server i of the cluster. */
function pinnedOptions(cluster: string, urls: readonly string[]): NodeProcessOptions[] {
  return urls.map((url, i) => ({ servers: [url], natsOptions: PINNED, cluster, nodeId: `n${i}`, ...LEASE }));
}

/** Names of the client connections a server has, from its monitoring endpoint. */
async function connectionNames(monitorUrl: string): Promise<string[]> {
  const res = await fetch(`${monitorUrl}/connz`);
  const body = (await res.json()) as { connections?: { name?: string }[] };
  return (body.connections ?? []).map((c) => c.name ?? "");
}

describe("NATS faults", () => {
  it("nodes on different servers of a 3-server NATS cluster converge and agree", async () => {
    await using nats = await NatsCluster.start(3);
    await nats.waitForRoutes();
    await using fleet = new Fleet();
    const cluster = clusterName();
    const nodes = await fleet.spawnAll(pinnedOptions(cluster, nats.urls));

    // Only routes carry heartbeats between them: each server has exactly its own node.
    for (const [i, server] of nats.servers.entries()) {
      const names = (await connectionNames(server.monitorUrl)).filter((n) => n.startsWith("keyhold-"));
      expect(names).toEqual([`keyhold-${cluster}-n${i}`]);
    }
    expectPartitionsCovered(await waitForMembers(nodes, IDS));
    await expectAgreement(nodes, IDS, keys(2000));
  });

  it("a server outage longer than the TTL: nodes fence, then recover by themselves", async () => {
    await using server = await NatsServer.start();
    await using fleet = new Fleet();
    const nodes = await fleet.spawnAll(memberOptions(clusterName(), server.url, 3));
    const before = await waitForMembers(nodes, IDS);
    const pids = nodes.map((n) => n.pid);
    const marks = nodes.map((n) => n.events.length);

    const stoppedAt = Date.now();
    await server.stop();
    // Nobody sees its own heartbeat come back, so everybody stops owning.
    await waitFor(async () => (await states(nodes)).every((s) => s.fenced && s.owned.length === 0), {
      timeout: SETTLE_MS,
      message: "nodes did not fence themselves while the server was down",
    });
    const down = await Promise.all(nodes.map((n) => n.place(keys(200))));
    for (const [i, placed] of down.entries()) expect(placed).not.toContain(nodes[i]!.id);
    for (const [i, node] of nodes.entries()) {
      // Cut off together, each one's peers expire around when its own lease does; none may
      // take a peer's partitions (let alone all of them) on the way to fencing.
      const t = transitions(node.events, marks[i]);
      expect(t.acquired, `${node.id} acquired while cut off`).toEqual([]);
      expect(t.released).toEqual(before[i]!.owned);
      expect(mostOwned(node.events, marks[i]!, before[i]!.owned)).toBeLessThan(RING_SIZE);
    }
    // Shape the outage (not a wait for correctness): well past the TTL before the server returns.
    await sleep(Math.max(0, TTL_MS * 3 + 500 - (Date.now() - stoppedAt)));
    expect(Date.now() - stoppedAt).toBeGreaterThan(TTL_MS * 3);

    const restartMarks = nodes.map((n) => n.events.length);
    await server.restart();
    expectPartitionsCovered(await waitForMembers(nodes, IDS));
    await expectAgreement(nodes, IDS, keys(2000));
    // Recovered by reconnecting, not by restarting anything.
    expect(nodes.map((n) => n.pid)).toEqual(pids);
    for (const pid of pids) expect(alive(pid)).toBe(true);
    for (const [i, node] of nodes.entries()) {
      const types = node.events.slice(marks[i]).map((e) => e.event.type);
      expect(types).toContain("fenced");
      expect(types.lastIndexOf("unfenced")).toBeGreaterThan(types.indexOf("fenced"));
      // Whoever reconnected first did not take the whole ring for being first: a rejoining
      // node waits for a peer's table, or a TTL of silence, before owning anything.
      expect(mostOwned(node.events, restartMarks[i]!, [])).toBeLessThan(RING_SIZE);
    }
  });

  it("a node cut off from NATS fences itself; the others take over; it rejoins", async () => {
    await using nats = await NatsCluster.start(3);
    await nats.waitForRoutes();
    await using fleet = new Fleet();
    const nodes = await fleet.spawnAll(pinnedOptions(clusterName(), nats.urls));
    const [a, b, c] = [nodes[0]!, nodes[1]!, nodes[2]!];
    const before = await waitForMembers(nodes, IDS);
    const aOwned = before[0]!.owned;
    const marks = nodes.map((n) => n.events.length);

    const sampler = sample(a);
    const killedAt = Date.now();
    await nats.kill(0);
    await waitFor(
      async () => {
        const s = await a.state();
        return s.fenced && s.owned.length === 0;
      },
      { timeout: SETTLE_MS, message: "the cut-off node never fenced itself" },
    );
    const rest = await waitForMembers([b, c], ["n1", "n2"]);
    expectPartitionsCovered(rest);
    // Still cut off: it must not answer for any key itself.
    expect(await a.place(keys(2000))).not.toContain("n0");
    const samples = await sampler.stop();

    // At no sample, and at no point of its event stream, did it own everything; in fact it took
    // nothing: it could not tell its peers' silence from its own, so it kept them until it fenced.
    expect(samples.length).toBeGreaterThan(5);
    for (const s of samples) expect(s.owned.length).toBeLessThan(RING_SIZE);
    expect(mostOwned(a.events, marks[0]!, aOwned)).toBeLessThan(RING_SIZE);
    const cutOff = transitions(a.events, marks[0]!);
    expect(cutOff.acquired).toEqual([]);
    expect(cutOff.released).toEqual(aOwned);
    expect(a.events.slice(marks[0]).some((e) => e.event.type === "fenced")).toBe(true);

    // The others waited out A's lease before taking over, then took exactly its partitions.
    for (const [i, s] of [b, c].entries()) {
      const dropped = leftAt(s, "n0", marks[i + 1]);
      expect(dropped, `${s.id} never dropped n0`).toBeDefined();
      expect(dropped! - killedAt).toBeGreaterThanOrEqual(TTL_MS - HEARTBEAT_MS - 100);
      expect(transitions(s.events, marks[i + 1]!).released).toEqual([]);
    }
    const taken = [b, c].flatMap((s, i) => transitions(s.events, marks[i + 1]!).acquired);
    expect(taken.sort((x, y) => x - y)).toEqual(aOwned);

    const rejoinMark = a.events.length;
    await nats.restart(0);
    await nats.waitForRoutes();
    const back = await waitForMembers(nodes, IDS);
    expectPartitionsCovered(back);
    await expectAgreement(nodes, IDS, keys(2000));
    expect(a.events.slice(marks[0]).some((e) => e.event.type === "unfenced")).toBe(true);
    // Back, it asked a peer for the table before taking anything: it went from nothing straight
    // to its share, never through "alone, so everything" (its peers' leases were long swept).
    const rejoin = transitions(a.events, rejoinMark);
    expect(rejoin.released).toEqual([]);
    expect(rejoin.acquired).toEqual(back[0]!.owned);
  });
});
