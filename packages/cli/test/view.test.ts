// The views behind the commands, from hand-made reports: what health calls a problem, how the
// ring shows a contested or unowned partition, and lease ages taken from the freshest view.
import { dashboardSnapshot, healthView, membersView, ownersView, placeView, ringView } from "@keyhold/cli";
import { decodeAdminReply, encodeAdmin, isAdminMalformed, type NodeReport, Ring } from "@keyhold/core";
import { describe, expect, it } from "vitest";

const config = { ringSize: 4, heartbeatMs: 100, ttlMs: 300, skewMs: 200, hash: "murmur3-32-hrw/1+caps/1" };
const report = (id: string, owned: number[], extra: Partial<NodeReport> = {}): NodeReport => ({
  id,
  at: 2_000_000,
  startedAt: 1_000_000,
  fenced: false,
  config,
  members: ["a", "b"],
  leases: [
    ["a", 50],
    ["b", 80],
  ],
  departed: [],
  owned,
  drainAllowed: false,
  membership: {
    heartbeatsSent: 1,
    heartbeatsAccepted: 1,
    malformed: 0,
    rejectedFuture: 0,
    rejectedStale: 0,
    configMismatch: 0,
    leavesSeen: 0,
    syncsServed: 0,
    syncsMerged: 0,
  },
  ...extra,
});

describe("views", () => {
  it("a cluster that agrees is healthy", () => {
    expect(healthView([report("a", [0, 1]), report("b", [2, 3])])).toEqual({
      healthy: true,
      members: 2,
      answered: 2,
      problems: [],
    });
  });

  it("health names every problem it finds", () => {
    const v = healthView([
      report("a", [0, 1, 2], { members: ["a", "b", "c"] }),
      report("b", [2], { fenced: true, config: { ...config, ttlMs: 900 } }),
    ]);
    expect(v.healthy).toBe(false);
    expect(v.problems).toEqual([
      "member c did not answer",
      "node b is fenced",
      "nodes disagree on the member list",
      "nodes report different cluster settings",
      "1 partitions have no owner",
      "1 partitions have more than one owner",
    ]);
  });

  it("ring: a contested partition has no single owner; hand-off states come from the owner", () => {
    const a = report("a", [0, 1, 2], {
      entities: {
        asksPerSec: 0,
        p50Ms: null,
        p99Ms: null,
        handled: 0,
        mailbox: 0,
        types: [],
        handoffs: [[1, "pending"]],
        recent: [],
        stats: {},
      },
    });
    const v = ringView("t", [a, report("b", [2])]);
    expect(v.partitions.map((p) => [p.owner, p.claimedBy, p.state])).toEqual([
      ["a", ["a"], "ready"],
      ["a", ["a"], "pending"],
      [null, ["a", "b"], null],
      [null, [], null],
    ]);
  });

  it("members: the freshest lease age any node reports; a silent member shows as not answered", () => {
    const v = membersView("t", [
      report("a", [0, 1], { members: ["a", "b"], leases: [["b", 250]] }),
      report("c", [2, 3], { members: ["a", "b", "c"], leases: [["b", 90]] }),
    ]);
    const b = v.members.find((m) => m.id === "b")!;
    expect(b).toEqual({
      id: "b",
      answered: false,
      leaseAgeMs: 90,
      fenced: null,
      owned: null,
      uptimeMs: null,
      drainAllowed: null,
    });
    expect(v.members.find((m) => m.id === "a")?.uptimeMs).toBe(1_000_000);
  });

  it("place refuses a hash version it does not implement", () => {
    expect(() => placeView([report("a", [0], { config: { ...config, hash: "xxhash/9" } })], "k")).toThrow(
      /the cluster uses hash xxhash\/9; this keyhold implements murmur3-32-hrw\/1/,
    );
  });

  it("place, owners and ring honour the admission fronts the reports carry (a member joining step by step)", () => {
    const members = ["a", "b", "c"];
    const ring64 = { ...config, ringSize: 64 };
    // c joins step by step and is at front 20: it may own only what it wins below 20.
    const fronts: [string, number][] = [["c", 20]];
    const capped = new Ring(members, 64, new Map(fronts));
    const plain = new Ring(members, 64);
    const reports = members.map((id) =>
      report(id, capped.partitionsOf(id), { config: ring64, members, adm: fronts }),
    );
    // A key c wins by plain HRW at a partition at or above its front: still another member's.
    const key = Array.from({ length: 10_000 }, (_, i) => `k${i}`).find(
      (k) => plain.place(k) === "c" && plain.partition(k) >= 20,
    )!;
    expect(placeView(reports, key)).toEqual({
      key,
      partition: plain.partition(key),
      owner: capped.place(key),
    });
    expect(placeView(reports, key).owner).not.toBe("c");
    expect(ownersView(reports, key, 3).owners).toEqual(capped.owners(key, 3));
    expect(ownersView(reports, key, 3).owners.at(-1)).toBe("c");
    const ring = ringView("t", reports);
    expect(ring.fronts).toEqual({ c: 20 });
    expect(dashboardSnapshot("t", reports).fronts).toEqual({ c: 20 });
    for (const p of ring.partitions) expect(p.expected).toBe(capped.ownerOfPartition(p.partition));
    // Every partition has its one expected owner claiming it: no false "moving" entries.
    expect(ring.partitions.every((p) => p.owner === p.expected)).toBe(true);
    // A member's peers' reports win over its own; with no peer report, its own is taken.
    const own = [report("c", [], { config: ring64, members, adm: [["c", 5]] }), ...reports.slice(0, 2)];
    expect(ringView("t", own).fronts).toEqual({ c: 20 });
    expect(ringView("t", [report("c", [], { config: ring64, members, adm: [["c", 5]] })]).fronts).toEqual({
      c: 5,
    });
  });

  it("a report's admission fronts are validated: malformed ones drop the report", () => {
    const wire = (adm: unknown) =>
      decodeAdminReply(encodeAdmin({ v: 1, k: "report", r: { ...report("a", [0]), adm } as NodeReport }));
    expect(wire([["c", 20]])).toMatchObject({ k: "report", r: { adm: [["c", 20]] } });
    for (const bad of [[["c", -1]], [["c", 5000]], [["", 1]], "c=20", [["c"]]])
      expect(isAdminMalformed(wire(bad))).toBe(true);
  });
});
