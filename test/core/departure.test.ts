// A member leaving a ring of node processes: killed with SIGKILL (peers wait out the lease) and
// closed gracefully (peers drop it at once), and in both cases exactly its partitions move.
import { NatsServer } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import {
  clusterName,
  expectAgreement,
  expectPartitionsCovered,
  Fleet,
  HEARTBEAT_MS,
  keys,
  leftAt,
  memberOptions,
  states,
  TTL_MS,
  transitions,
  waitForMembers,
} from "./support.js";

const IDS = ["n0", "n1", "n2"];

describe("a member leaving", () => {
  it("kill -9: survivors drop it after the TTL and take over exactly its partitions", async () => {
    await using server = await NatsServer.start();
    await using fleet = new Fleet();
    const nodes = await fleet.spawnAll(memberOptions(clusterName(), server.url, 3));
    const before = await waitForMembers(nodes, IDS);
    const [victim, ...survivors] = [nodes[1]!, nodes[0]!, nodes[2]!];
    const victimOwned = before.find((v) => v.id === victim.id)!.owned;
    expect(victimOwned.length).toBeGreaterThan(0);
    const marks = survivors.map((s) => s.events.length);

    const killedAt = Date.now();
    await victim.kill();
    // Its last heartbeat is at most one beat old, so its lease still has about TTL - heartbeat
    // to run: a survivor that dropped it now would not be waiting for the lease at all.
    const early = await states(survivors);
    const askedAfter = Date.now() - killedAt;
    for (const s of early) expect(s.members, `${s.id}, ${askedAfter} ms after the kill`).toContain("n1");

    const after = await waitForMembers(survivors, ["n0", "n2"]);
    expectPartitionsCovered(after);

    const taken: number[] = [];
    for (const [i, s] of survivors.entries()) {
      const dropped = leftAt(s, victim.id, marks[i]);
      expect(dropped, `${s.id} has no event dropping n1`).toBeDefined();
      const detection = dropped! - killedAt;
      console.info(
        `kill -9 seen by ${s.id} after ${detection} ms (ttl ${TTL_MS}, heartbeat ${HEARTBEAT_MS})`,
      );
      // Not before the lease can have run out (one beat of phase and some scheduling slack),
      // not long after it did.
      expect(detection).toBeGreaterThanOrEqual(TTL_MS - HEARTBEAT_MS - 100);
      expect(detection).toBeLessThan(TTL_MS + 3000);

      const { acquired, released } = transitions(s.events, marks[i]);
      expect(released, `${s.id} released`).toEqual([]);
      for (const p of acquired) expect(victimOwned, `${s.id} acquired ${p}`).toContain(p);
      const was = before.find((v) => v.id === s.id)!.owned;
      expect(after.find((v) => v.id === s.id)!.owned).toEqual([...was, ...acquired].sort((a, b) => a - b));
      taken.push(...acquired);
    }
    // Between them, each of the dead node's partitions exactly once.
    expect(taken.sort((a, b) => a - b)).toEqual(victimOwned);
    // Dropped by expiry: nobody sent a leave.
    for (const s of after) expect(s.stats.leavesSeen).toBe(0);
    await expectAgreement(survivors, ["n0", "n2"], keys(2000));
  });

  it("graceful close: peers drop the member within one heartbeat, far below the TTL", async () => {
    await using server = await NatsServer.start();
    await using fleet = new Fleet();
    const nodes = await fleet.spawnAll(memberOptions(clusterName(), server.url, 3));
    const before = await waitForMembers(nodes, IDS);
    const [victim, ...survivors] = [nodes[2]!, nodes[0]!, nodes[1]!];
    const victimOwned = before.find((v) => v.id === victim.id)!.owned;
    const marks = survivors.map((s) => s.events.length);

    const requestedAt = Date.now();
    // The child's Date.now() when close() returned; same machine, so same clock as the events.
    const closedAt = await victim.close();
    expect(await victim.exited).toBe(0);

    const after = await waitForMembers(survivors, ["n0", "n1"]);
    expectPartitionsCovered(after);
    const taken: number[] = [];
    for (const [i, s] of survivors.entries()) {
      const dropped = leftAt(s, victim.id, marks[i]);
      expect(dropped, `${s.id} has no event dropping n2`).toBeDefined();
      console.info(
        `close seen by ${s.id} ${dropped! - closedAt} ms after close() returned, ` +
          `${dropped! - requestedAt} ms after it was requested (heartbeat ${HEARTBEAT_MS}, ttl ${TTL_MS})`,
      );
      // Waiting out the lease would take up to TTL_MS after the last beat; the leave makes it
      // one message. 150 ms of slack for a loaded two-core machine. Measured from the request
      // too (which includes the IPC hop), since the leave usually lands before close() returns.
      expect(dropped! - closedAt).toBeLessThan(HEARTBEAT_MS + 150);
      expect(dropped! - requestedAt).toBeLessThan(HEARTBEAT_MS + 150);
      const { acquired, released } = transitions(s.events, marks[i]);
      expect(released).toEqual([]);
      taken.push(...acquired);
    }
    expect(taken.sort((a, b) => a - b)).toEqual(victimOwned);
    // Dropped because it said so, once, to each survivor.
    for (const s of after) expect(s.stats.leavesSeen).toBe(1);
  });
});
