// The backstop that takes over an owned partition no path is serving or taking over
// (owned-watch.ts): it acts only on two looks a heartbeat apart, never on a partition that is
// served, draining, being acquired or waiting for its take-back, and never without a lease.
import { type ShardNode, silentLogger } from "@keyhold/core";
import { describe, expect, it } from "vitest";
import { OwnedWatch } from "../src/owned-watch.js";
import { PartitionStates } from "../src/partitions.js";

function rig(owned: number[]) {
  const node = { closed: false, lease: true, owned, config: { heartbeatMs: 100 } };
  const fake = {
    get closed() {
      return node.closed;
    },
    leaseValid: () => node.lease,
    ownedPartitions: () => node.owned,
    config: node.config,
  } as unknown as ShardNode;
  const partitions = new PartitionStates({ bufferLimit: 10, logger: silentLogger, nodeId: "a" });
  const acquiring = new Set<number>();
  const yielded = new Set<number>();
  const acquired: number[] = [];
  const warnings: string[] = [];
  const stats = { partitionsRecovered: 0 };
  const watch = new OwnedWatch({
    node: fake,
    partitions,
    clock: { now: () => 0, monoNow: () => 0, setTimeout: () => 0, clearTimeout: () => {} },
    logger: { ...silentLogger, warn: (m: string) => warnings.push(m) },
    nodeId: "a",
    acquiring: (p) => acquiring.has(p),
    yielded: (p) => yielded.has(p),
    acquire: (p) => acquired.push(p),
    stats,
  });
  return { node, partitions, acquiring, yielded, acquired, warnings, stats, watch };
}

describe("owned-partition backstop", () => {
  it("takes over an owned partition left without state (or pending with nothing under way) at the second look", () => {
    const r = rig([3, 7]);
    r.partitions.pending(7); // a buffered message made it pending; no acquisition runs
    r.watch.look();
    expect(r.acquired).toEqual([]);
    r.watch.look();
    expect(r.acquired).toEqual([3, 7]);
    expect(r.stats.partitionsRecovered).toBe(2);
    expect(r.warnings[0]).toMatch(/partition 3 is owned here but was neither served nor being taken over/);
  });

  it("leaves alone what is served, draining, being acquired or waiting for its take-back", () => {
    const r = rig([1, 2, 3, 4]);
    r.partitions.set(1, { s: "ready" });
    r.partitions.set(2, { s: "releasing", done: Promise.resolve() });
    r.acquiring.add(3);
    r.yielded.add(4);
    for (let i = 0; i < 5; i++) r.watch.look();
    expect(r.acquired).toEqual([]);
  });

  it("needs two looks in a row: a partition served in between, or a look without a lease, starts over", () => {
    const r = rig([5]);
    r.watch.look();
    r.partitions.set(5, { s: "ready" });
    r.watch.look();
    r.partitions.delete(5);
    r.watch.look();
    expect(r.acquired).toEqual([]);
    r.node.lease = false;
    r.watch.look();
    r.node.lease = true;
    r.watch.look();
    expect(r.acquired).toEqual([]);
    r.watch.look();
    expect(r.acquired).toEqual([5]);
  });
});
