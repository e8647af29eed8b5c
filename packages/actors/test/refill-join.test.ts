// A refill skips partitions this node's current view has already given away (issue 10): copies
// for a moving partition only hold up that partition's chain.
import { describe, expect, it } from "vitest";
import type { Background } from "../src/background.js";
import type { PartitionStates } from "../src/partitions.js";
import { Refill } from "../src/refill.js";
import type { Replicator } from "../src/replication.js";
import type { SlotTable } from "../src/slots.js";

function setup(owned: ReadonlySet<number>) {
  const sent: number[] = [];
  const stats = { refills: 0, refillsFailed: 0 };
  const replicator = {
    stats,
    takeCopies: () => [],
    replicasOf: () => 2,
    targets: () => ["peer"],
    message: (p: number) => ({ p }),
    send: async (_t: string, _m: unknown, p: number) => {
      sent.push(p);
      return "ok";
    },
  } as unknown as Replicator;
  const partitions = {
    chain: (_p: number, fn: () => Promise<void>) => fn(),
    state: () => "ready",
    ready: () => [0, 1, 2, 3],
  } as unknown as PartitionStates;
  const slots = {
    slotsOf: (p: number) => [p],
    record: (s: number) => ({ t: "Account", k: `k${s}`, ver: 1, st: {} }),
  } as unknown as SlotTable;
  const background = { add: (_k: string, fn: () => Promise<void>) => fn() } as unknown as Background;
  const refill = new Refill({
    replicator,
    partitions,
    slots,
    clock: { now: () => 0 } as never,
    logger: { warn: () => {}, info: () => {}, debug: () => {}, error: () => {} } as never,
    nodeId: "a",
    install: () => {},
    background,
    owns: (p) => owned.has(p),
  });
  return { refill, sent, stats };
}

describe("refill after a join", () => {
  it("sends no copies for partitions the current view has given away", async () => {
    const { refill, sent, stats } = setup(new Set([0, 2]));
    refill.refillAll();
    await refill.refill(1);
    await refill.refill(0);
    await new Promise((r) => setTimeout(r, 10));
    expect(sent.filter((p) => p === 1 || p === 3)).toEqual([]);
    expect(stats.refills).toBe(3);
  });
});
