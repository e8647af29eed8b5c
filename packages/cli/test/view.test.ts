// The views behind the commands, from hand-made reports: what health calls a problem, how the
// ring shows a contested or unowned partition, and lease ages taken from the freshest view.
import { healthView, membersView, placeView, ringView } from "@keyhold/cli";
import type { NodeReport } from "@keyhold/core";
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
});
