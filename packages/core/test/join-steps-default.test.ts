// Joining step by step by default (joinStepPartitions "auto": a quarter of what the node wins per
// step, so four steps whatever the ring size), and the admission fronts a sync reply carries:
// a node that starts while another is mid-step places like the others at once.
import {
  decodeMembershipMessage,
  JOIN_STEPS,
  membershipSubjects,
  Ring,
  ShardNode,
  type ShardNodeOptions,
  stepSize,
} from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { LeaseTable } from "../src/lease.js";
import { mergeSyncReply } from "../src/sync.js";
import { startSimNode } from "./sim-node.js";

const HB = 100;
const packr = new Packr({ useRecords: false });

async function start(bus: SimBus, id: string, ringSize: number, extra: Partial<ShardNodeOptions> = {}) {
  const sim = await startSimNode(bus, id, { ringSize, ...extra });
  await bus.clock.advance(0);
  return sim;
}

/** Every distinct front `id` advertises in its heartbeats, in order. */
function frontsOf(bus: SimBus, id: string): number[] {
  const fronts: number[] = [];
  bus.connect(`spy-${id}`).subscribe(membershipSubjects("t").heartbeat, (m) => {
    const hb = packr.unpack(m.data) as { id: string; adm?: number };
    if (hb.id === id && hb.adm !== undefined && fronts.at(-1) !== hb.adm) fronts.push(hb.adm);
  });
  return fronts;
}

describe("joinStepPartitions auto (the default)", () => {
  it("sizes a step as a JOIN_STEPS-th of what the node wins, at least 1", () => {
    expect(JOIN_STEPS).toBe(4);
    expect(stepSize("auto", 16)).toBe(4);
    expect(stepSize("auto", 17)).toBe(5);
    expect(stepSize("auto", 341)).toBe(86);
    expect(stepSize("auto", 1)).toBe(1);
    expect(stepSize("auto", 0)).toBe(1);
    expect(stepSize(3, 341)).toBe(3);
  });

  for (const ring of [64, 1024]) {
    it(`joins in ${JOIN_STEPS} steps by default, in a ${ring}-partition ring, and leaves in as many`, async () => {
      const bus = new SimBus(new VirtualClock());
      const a = await start(bus, "a", ring);
      // The first node of a cluster joins at once.
      expect(a.node.joinFront).toBeUndefined();
      expect(a.node.ownedPartitions().length).toBe(ring);
      const b = await start(bus, "b", ring);
      for (let t = 0; t < 40 && b.node.joinFront !== undefined; t++) await bus.clock.advance(HB);
      const fronts = frontsOf(bus, "c");
      const c = await start(bus, "c", ring);
      expect(c.node.joinFront).toBe(0);
      const won = new Ring(["a", "b", "c"], ring).partitionsWonBy("c");
      const counts: number[] = [];
      for (let t = 0; t < 40 && c.node.joinFront !== undefined; t++) {
        await bus.clock.advance(HB / 2);
        counts.push(a.node.ring.partitionsOf("c").length);
      }
      expect(c.node.joinFront).toBeUndefined();
      // Front 0 first, then JOIN_STEPS steps (the last one uncaps and is not advertised).
      expect(fronts[0]).toBe(0);
      expect(fronts.length).toBe(JOIN_STEPS);
      const step = Math.ceil(won.length / JOIN_STEPS);
      for (let i = 1; i < counts.length; i++) expect(counts[i]! - counts[i - 1]!).toBeLessThanOrEqual(step);
      await bus.clock.advance(HB * 2);
      expect(c.node.ownedPartitions()).toEqual(won);

      let released = false;
      void c.node
        .releaseStepwise(() => true)
        .then(() => {
          released = true;
        });
      const down: number[] = [];
      for (let t = 0; t < 40 && !released; t++) {
        await bus.clock.advance(HB / 2);
        down.push(a.node.ring.partitionsOf("c").length);
      }
      expect(released).toBe(true);
      const drops = down.filter((n, i) => n < (i === 0 ? won.length : down[i - 1]!));
      expect(drops.length).toBe(JOIN_STEPS);
      for (const n of [a, b, c]) await n.node.close();
    });
  }

  it('accepts "auto" and 0 (at once); refuses anything else, naming the option and the value', async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await start(bus, "a", 64, { joinStepPartitions: 0 });
    const b = await start(bus, "b", 64, { joinStepPartitions: 0 });
    expect(b.node.joinFront).toBeUndefined();
    expect(b.node.ownedPartitions().length).toBeGreaterThan(0);
    const c = await start(bus, "c", 64, { joinStepPartitions: "auto" });
    expect(c.node.joinFront).toBe(0);
    for (const n of [a, b, c]) await n.node.close();
    for (const bad of ["fast", -1, 2.5, 65, null]) {
      await expect(
        ShardNode.start({
          transport: bus.connect("x"),
          cluster: "t",
          ringSize: 64,
          joinStepPartitions: bad as number,
        }),
      ).rejects.toThrow(new RegExp(`joinStepPartitions.*${bad === null ? "null" : String(bad)}`));
    }
  });
});

describe("a node cut off while it joins", () => {
  it.each([10, 40, 70])(
    "takes nothing its peers were not told about, and steps no further (cut %i ms after a step)",
    async (phase) => {
      const bus = new SimBus(new VirtualClock());
      const a = await start(bus, "a", 64);
      const b = await start(bus, "b", 64);
      for (let t = 0; t < 40 && b.node.joinFront !== undefined; t++) await bus.clock.advance(HB);
      const c = await start(bus, "c", 64);
      while (c.node.ownedPartitions().length === 0) await bus.clock.advance(1);
      await bus.clock.advance(phase);
      const cut = c.events.length;
      const owned = c.node.ownedPartitions();
      c.ep!.disconnect();
      for (let t = 0; t < 600; t += 5) {
        await bus.clock.advance(5);
        // Whatever c still owns, a places on c too: never two owners.
        for (const p of c.node.ownedPartitions()) expect(a.node.ring.ownerOfPartition(p)).toBe("c");
      }
      expect(c.node.fenced).toBe(true);
      expect(c.events.slice(cut).filter((e) => e.type === "acquired")).toEqual([]);
      expect(owned.length).toBeLessThan(new Ring(["a", "b", "c"], 64).partitionsWonBy("c").length);
      for (const n of [a, b, c]) await n.node.close();
    },
  );
});

describe("admission fronts in sync replies", () => {
  it("a node that starts while another is mid-step places with its front before its next heartbeat", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await start(bus, "a", 64);
    const b = await start(bus, "b", 64);
    for (let t = 0; t < 40 && b.node.joinFront !== undefined; t++) await bus.clock.advance(HB);
    const c = await start(bus, "c", 64);
    // Hold c after its first step.
    c.node.setJoinGate((owned) => owned.length === 0);
    await bus.clock.advance(HB * 4);
    const front = c.node.joinFront;
    expect(front).toBeGreaterThan(0);
    expect(a.node.ring.capOf("c")).toBe(front);
    // Start d (and an observer) right after one of c's heartbeats, and check that c sent none
    // while they started: what they know of c's front came from the sync reply.
    const beats: number[] = [];
    bus.connect("spy").subscribe(membershipSubjects("t").heartbeat, (m) => {
      if ((packr.unpack(m.data) as { id: string }).id === "c") beats.push(bus.clock.now());
    });
    while (beats.length === 0) await bus.clock.advance(1);
    const seen = beats.length;
    const d = await start(bus, "d", 64);
    const w = await start(bus, "w", 64, { observer: true });
    expect(beats.length).toBe(seen);
    expect(d.node.ring.capOf("c")).toBe(front);
    expect(w.node.ring.capOf("c")).toBe(front);
    // d itself starts at 0, and c already knows it; every view agrees.
    expect(d.node.joinFront).toBe(0);
    for (let p = 0; p < 64; p++)
      expect(w.node.ring.ownerOfPartition(p)).toBe(a.node.ring.ownerOfPartition(p));
    for (const n of [a, b, c, d, w]) await n.node.close();
  });

  it("drops a sync reply whose fronts are malformed", () => {
    const cfg = { ringSize: 64, heartbeatMs: HB, ttlMs: 300, skewMs: 200, hash: "murmur3-32-hrw/1+caps/1" };
    const reply = (adm: unknown) =>
      packr.pack({ v: 1, k: "table", id: "a", cfg, leases: [["b", 1_000]], left: [], adm });
    for (const bad of [[["b", -1]], [["b", 1.5]], [["b", 5000]], [["", 3]], [["b"]], "b:3", [["b", 3, 4]]]) {
      expect(decodeMembershipMessage(reply(bad))).toMatchObject({ error: "bad admission fronts" });
      expect(mergeSyncReply(new LeaseTable(300, 200), reply(bad), "x", cfg, 1_000).kind).toBe("malformed");
    }
    expect(decodeMembershipMessage(reply([["b", 3]]))).toMatchObject({ k: "table", adm: [["b", 3]] });
  });
});
