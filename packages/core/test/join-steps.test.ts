// Joining step by step: placement under admission caps (every node computes the same owner, a
// cap never makes two owners, each step moves at most its step's partitions), and a ShardNode
// that joins with joinStepPartitions over the simulated bus.
import {
  admitted,
  membershipSubjects,
  nextFront,
  ownerOfPartition,
  ownersOfPartitionCapped,
  Ring,
  ShardNode,
  type ShardNodeOptions,
} from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { startSimNode } from "./sim-node.js";

const RING = 64;
const ids = fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,6}$/), { minLength: 1, maxLength: 7 });
/** Members and a front (or none) for some of them. */
const cluster = ids.chain((members) =>
  fc.tuple(
    fc.constant(members),
    fc.array(fc.option(fc.integer({ min: 0, max: RING }), { nil: undefined }), {
      minLength: members.length,
      maxLength: members.length,
    }),
  ),
);
function capsOf(members: readonly string[], fronts: readonly (number | undefined)[]): Map<string, number> {
  const caps = new Map<string, number>();
  members.forEach((m, i) => {
    if (fronts[i] !== undefined) caps.set(m, fronts[i]!);
  });
  return caps;
}

describe("placement under admission caps", () => {
  it("every node computes the same owners, whatever order it learnt members and caps in", () => {
    fc.assert(
      fc.property(cluster, fc.integer(), ([members, fronts], seed) => {
        const caps = capsOf(members, fronts);
        const shuffled = [...members].sort(() => (seed & 1 ? 1 : -1));
        const reversedCaps = new Map([...caps].reverse());
        const a = new Ring(members, RING, caps);
        const b = new Ring(shuffled.reverse(), RING, reversedCaps);
        for (let p = 0; p < RING; p++) {
          expect(a.ownersOfPartition(p, members.length)).toEqual(b.ownersOfPartition(p, members.length));
          // The ring is the precomputed form of the per-call rule.
          expect(a.ownersOfPartition(p, 3)).toEqual(ownersOfPartitionCapped(p, members, 3, caps));
        }
      }),
    );
  });

  it("a cap never makes two owners or none: one admitted owner per partition, replicas distinct", () => {
    fc.assert(
      fc.property(cluster, ([members, fronts]) => {
        const caps = capsOf(members, fronts);
        const ring = new Ring(members, RING, caps);
        const tiled = members.flatMap((m) => ring.partitionsOf(m)).sort((x, y) => x - y);
        expect(tiled).toEqual(Array.from({ length: RING }, (_, p) => p));
        for (let p = 0; p < RING; p++) {
          const row = ring.ownersOfPartition(p, members.length);
          expect(new Set(row).size).toBe(members.length);
          const owner = row[0]!;
          // Admitted, unless nobody is (then plain HRW: someone must serve it).
          if (members.some((m) => admitted(m, p, caps))) expect(admitted(owner, p, caps)).toBe(true);
          else expect(owner).toBe(ownerOfPartition(p, members));
          // Every member admitted for p and ahead of the owner in HRW order is none.
          const hrw = ownersOfPartitionCapped(p, members, members.length, undefined);
          for (const m of hrw.slice(0, hrw.indexOf(owner))) expect(admitted(m, p, caps)).toBe(false);
        }
      }),
    );
  });

  it("a joiner at front 0 owns nothing and moves no other partition; each step moves at most its step", () => {
    fc.assert(
      fc.property(ids, fc.integer({ min: 1, max: 8 }), (others, step) => {
        const joiner = "j_new";
        const members = [...others, joiner];
        const before = new Ring(others, RING);
        const after = new Ring(members, RING);
        let front = 0;
        let prev = new Ring(members, RING, new Map([[joiner, front]]));
        for (let p = 0; p < RING; p++) expect(prev.ownerOfPartition(p)).toBe(before.ownerOfPartition(p));
        const won = after.partitionsWonBy(joiner);
        let steps = 0;
        while (front < RING) {
          const next = nextFront(won, front, step, RING);
          expect(next).toBeGreaterThan(front);
          const ring = new Ring(members, RING, new Map([[joiner, next]]));
          const moved = [];
          for (let p = 0; p < RING; p++)
            if (ring.ownerOfPartition(p) !== prev.ownerOfPartition(p)) moved.push(p);
          // Only partitions the joiner wins, in [front, next), each to the joiner.
          expect(moved.length).toBeLessThanOrEqual(step);
          for (const p of moved) {
            expect(ring.ownerOfPartition(p)).toBe(joiner);
            expect(p >= front && p < next).toBe(true);
          }
          front = next;
          prev = ring;
          steps++;
        }
        expect(steps).toBe(Math.max(1, Math.ceil(won.length / step)));
        for (let p = 0; p < RING; p++) expect(prev.ownerOfPartition(p)).toBe(after.ownerOfPartition(p));
      }),
    );
  });

  it("a capped member is last where it is not admitted: at front 0 no owner or replica set changes", () => {
    fc.assert(
      fc.property(ids, fc.integer({ min: 0, max: RING }), (others, front) => {
        const members = [...others, "j_new"];
        const without = new Ring(others, RING);
        const ring = new Ring(members, RING, new Map([["j_new", front]]));
        const plain = new Ring(members, RING);
        for (let p = 0; p < RING; p++) {
          const row = ring.ownersOfPartition(p, members.length);
          if (p < front) expect(row).toEqual(plain.ownersOfPartition(p, members.length));
          else expect(row).toEqual([...without.ownersOfPartition(p, others.length), "j_new"]);
        }
      }),
    );
  });
});

const HB = 100;
const packr = new Packr({ useRecords: false });

async function start(bus: SimBus, id: string, extra: Partial<ShardNodeOptions> = {}) {
  const { node, events } = await startSimNode(bus, id, { ringSize: RING, ...extra });
  await bus.clock.advance(0);
  return { node, events };
}

describe("a ShardNode joining step by step", () => {
  it("takes its partitions a step at a time, in every view, and ends with plain HRW", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await start(bus, "a");
    const b = await start(bus, "b");
    const watcher = await start(bus, "w", { observer: true });
    const fronts: number[] = [];
    bus.connect("spy").subscribe(membershipSubjects("t").heartbeat, (m) => {
      const hb = packr.unpack(m.data) as { id: string; adm?: number };
      if (hb.id === "c" && hb.adm !== undefined && fronts.at(-1) !== hb.adm) fronts.push(hb.adm);
    });
    await bus.clock.advance(HB * 3);
    const c = await start(bus, "c", { joinStepPartitions: 3 });
    const seen: number[] = [];
    for (let t = 0; t < 60 && c.node.joinFront !== undefined; t++) {
      for (const { node } of [a, b, watcher]) seen.push(node.ring.partitionsOf("c").length);
      await bus.clock.advance(HB / 2);
    }
    expect(c.node.joinFront).toBeUndefined();
    await bus.clock.advance(HB * 2);
    const plain = new Ring(["a", "b", "c"], RING);
    const won = plain.partitionsWonBy("c");
    expect(won.length).toBeGreaterThan(6);
    // The first heartbeat said 0 (owns nothing), then one step per beat (no layer gates it here).
    expect(fronts[0]).toBe(0);
    expect(fronts.length).toBe(Math.ceil(won.length / 3));
    for (let i = 3; i < seen.length; i++) expect(Math.abs(seen[i]! - seen[i - 3]!)).toBeLessThanOrEqual(3);
    for (const { node } of [a, b, c, watcher]) {
      for (let p = 0; p < RING; p++) expect(node.ring.ownerOfPartition(p)).toBe(plain.ownerOfPartition(p));
    }
    // c acquired a step at a time: its own events never jumped by more than 3.
    const acquiredAt = c.events.filter((e) => e.type === "acquired").length;
    expect(acquiredAt).toBe(won.length);
    for (const n of [a, b, c, watcher]) await n.node.close();
  });

  it("waits for its gate before each step; the first node of a cluster joins at once", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await start(bus, "a", { joinStepPartitions: 2 });
    expect(a.node.joinFront).toBeUndefined();
    expect(a.node.ownedPartitions().length).toBe(RING);
    const b = await start(bus, "b", { joinStepPartitions: 2 });
    let open = false;
    // Served when it owns nothing yet; afterwards only once the test says so.
    b.node.setJoinGate((owned) => owned.length === 0 || open);
    expect(b.node.joinFront).toBe(0);
    await bus.clock.advance(HB * 3);
    // The warm-up beat is over, the first step taken; the gate holds the second.
    const first = b.node.ownedPartitions().length;
    expect(first).toBe(2);
    await bus.clock.advance(HB * 5);
    expect(b.node.ownedPartitions().length).toBe(first);
    expect(a.node.ring.partitionsOf("b").length).toBe(first);
    open = true;
    // The next step goes with the next heartbeat.
    await bus.clock.advance(HB);
    expect(b.node.ownedPartitions().length).toBe(first + 2);
    expect(a.node.ring.partitionsOf("b").length).toBe(first + 2);
    await a.node.close();
    await b.node.close();
  });

  it("releases its partitions a step per heartbeat before a leave, so the leave itself moves none", async () => {
    const bus = new SimBus(new VirtualClock());
    const opts = { joinStepPartitions: 5 };
    const [a, b, c] = [await start(bus, "a", opts), await start(bus, "b", opts), await start(bus, "c", opts)];
    for (let t = 0; t < 40 && c.node.joinFront !== undefined; t++) await bus.clock.advance(HB);
    await bus.clock.advance(HB * 2);
    const before = c.node.ownedPartitions().length;
    expect(before).toBeGreaterThan(10);
    let released = false;
    void c.node
      .releaseStepwise(() => true)
      .then(() => {
        released = true;
      });
    const counts: number[] = [];
    for (let t = 0; t < 40 && !released; t++) {
      await bus.clock.advance(HB / 2);
      counts.push(a.node.ring.partitionsOf("c").length);
    }
    expect(released).toBe(true);
    expect(c.node.ownedPartitions()).toEqual([]);
    for (let i = 1; i < counts.length; i++) expect(counts[i - 1]! - counts[i]!).toBeLessThanOrEqual(5);
    expect(counts.filter((n, i) => i > 0 && n < counts[i - 1]!).length).toBeGreaterThanOrEqual(
      Math.ceil(before / 5) - 1,
    );
    const [na, nb] = [a.events.length, b.events.length];
    await c.node.leave();
    await bus.clock.advance(HB * 3);
    // The leave changed the members, not the owners: no partition was acquired or released.
    const after = [...a.events.slice(na), ...b.events.slice(nb)];
    expect(after.filter((e) => e.type === "acquired" || e.type === "released")).toEqual([]);
    expect(a.node.members()).toEqual(["a", "b"]);
    for (const n of [a, b, c]) await n.node.close();
  });

  it("rejects a joinStepPartitions that is not an integer from 0 to ringSize", async () => {
    const bus = new SimBus(new VirtualClock());
    for (const bad of [-1, 1.5, RING + 1, "2"]) {
      await expect(
        ShardNode.start({
          transport: bus.connect("x"),
          cluster: "t",
          ringSize: RING,
          joinStepPartitions: bad as number,
        }),
      ).rejects.toThrow(/joinStepPartitions/);
    }
  });
});
