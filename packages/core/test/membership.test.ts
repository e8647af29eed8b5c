// Membership and ownership over the simulated bus with a virtual clock: the lease rules,
// join sync, graceful leave, crash expiry, fencing, config checks and hostile input, run in
// virtual milliseconds.
import {
  ConfigMismatchError,
  membershipSubjects,
  Ring,
  type ShardEvent,
  type ShardNode,
  type ShardNodeOptions,
} from "@keyhold/core";
import { SimBus, type SimEndpoint, seededRandom, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { startSimNode } from "./sim-node.js";

const HB = 100;
const TTL = 300;
const SKEW = 200;
const packr = new Packr({ useRecords: false });

interface Sim {
  node: ShardNode;
  ep: SimEndpoint;
  events: ShardEvent[];
}

async function start(
  bus: SimBus,
  id: string,
  extra: Partial<ShardNodeOptions> = {},
  lastStep = true,
): Promise<Sim> {
  const sim = await startSimNode(bus, id, { heartbeatMs: HB, ttlMs: TTL, skewMs: SKEW, ...extra });
  await bus.clock.advance(0);
  // Joining step by step is the default (joinStepPartitions "auto"): these tests are about what
  // happens once a node owns what it wins, so wait for its last step (join-steps tests cover steps).
  for (let t = 0; lastStep && t < 100 && sim.node.joinFront !== undefined; t++) await bus.clock.advance(HB);
  return { ...sim, ep: sim.ep! };
}

/** The owned set a stream of events implies. */
function replay(events: readonly ShardEvent[]): number[] {
  const owned = new Set<number>();
  for (const e of events) {
    if (e.type === "acquired") owned.add(e.partition);
    if (e.type === "released") owned.delete(e.partition);
  }
  return [...owned].sort((a, b) => a - b);
}

function setup(opts: ConstructorParameters<typeof SimBus>[1] = {}) {
  const clock = new VirtualClock();
  return new SimBus(clock, opts);
}

describe("membership over a simulated bus", () => {
  it("nodes converge and agree on placement; owned partitions tile the ring", async () => {
    const bus = setup();
    const nodes = [await start(bus, "a"), await start(bus, "b"), await start(bus, "c")];
    await bus.clock.advance(HB * 2);
    for (const { node } of nodes) expect(node.members()).toEqual(["a", "b", "c"]);
    for (let i = 0; i < 1000; i++) {
      const owners = new Set(nodes.map(({ node }) => node.place(`k${i}`)));
      expect(owners.size).toBe(1);
    }
    const all = nodes.flatMap(({ node }) => node.ownedPartitions()).sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 64 }, (_, i) => i));
    for (const n of nodes) expect(replay(n.events)).toEqual(n.node.ownedPartitions());
  });

  it("a joining node has the lease table as soon as start() resolves, before a heartbeat round", async () => {
    const bus = setup();
    await start(bus, "a");
    await start(bus, "b");
    await bus.clock.advance(HB * 2);
    const t0 = bus.clock.now();
    const c = await start(bus, "c", {}, false);
    expect(bus.clock.now() - t0).toBeLessThan(HB / 2);
    expect(c.node.members()).toEqual(["a", "b", "c"]);
  });

  it("fires acquired/released only on change, exactly for the partitions gained and lost", async () => {
    const bus = setup();
    const a = await start(bus, "a");
    const b = await start(bus, "b");
    await bus.clock.advance(HB * 2);
    const before = a.events.length;
    await bus.clock.advance(TTL * 10);
    expect(a.events.length).toBe(before); // steady state: nothing fires
    const aOwned = new Set(a.node.ownedPartitions());
    const c = await start(bus, "c");
    await bus.clock.advance(HB);
    const moved = new Ring(["a", "b", "c"], 64).partitionsOf("c");
    const released = a.events
      .slice(before)
      .filter((e) => e.type === "released")
      .map((e) => (e as { partition: number }).partition);
    expect(released.sort((x, y) => x - y)).toEqual(moved.filter((p) => aOwned.has(p)));
    expect(a.events.slice(before).some((e) => e.type === "acquired")).toBe(false);
    expect(c.node.ownedPartitions()).toEqual(moved);
    expect(b.node.members()).toEqual(["a", "b", "c"]);
  });

  it("graceful close is seen within one heartbeat and the leaver's partitions move to survivors", async () => {
    const bus = setup();
    const a = await start(bus, "a");
    const b = await start(bus, "b");
    const c = await start(bus, "c");
    await bus.clock.advance(HB * 2);
    const cOwned = c.node.ownedPartitions();
    const aBefore = a.node.ownedPartitions();
    await c.node.close();
    await bus.clock.advance(5);
    expect(a.node.members()).toEqual(["a", "b"]);
    expect(b.node.members()).toEqual(["a", "b"]);
    const gained = a.node.ownedPartitions().filter((p) => !aBefore.includes(p));
    expect(gained.every((p) => cOwned.includes(p))).toBe(true);
    expect([...a.node.ownedPartitions(), ...b.node.ownedPartitions()].sort((x, y) => x - y)).toEqual(
      Array.from({ length: 64 }, (_, i) => i),
    );
    // the closed node's own stream ends with released for everything it held
    expect(replay(c.events)).toEqual([]);
    // heartbeats of c still in flight do not bring it back
    await bus.clock.advance(TTL * 2);
    expect(a.node.members()).toEqual(["a", "b"]);
  });

  it("a crashed node is dropped after the TTL, not before, and only its partitions move", async () => {
    const bus = setup();
    const a = await start(bus, "a");
    const b = await start(bus, "b");
    const c = await start(bus, "c");
    await bus.clock.advance(HB * 2);
    const bOwned = b.node.ownedPartitions();
    const aBefore = a.node.ownedPartitions();
    await b.ep.close(); // vanishes without a leave, like kill -9
    await bus.clock.advance(TTL - HB);
    expect(a.node.members()).toEqual(["a", "b", "c"]);
    await bus.clock.advance(2 * HB);
    expect(a.node.members()).toEqual(["a", "c"]);
    expect(c.node.members()).toEqual(["a", "c"]);
    const gained = a.node.ownedPartitions().filter((p) => !aBefore.includes(p));
    expect(gained.length).toBeGreaterThan(0);
    expect(gained.every((p) => bOwned.includes(p))).toBe(true);
    expect(aBefore.every((p) => a.node.ownedPartitions().includes(p))).toBe(true);
  });

  it("a late subscriber learns what it owns without a gap", async () => {
    const bus = setup();
    const a = await start(bus, "a");
    await start(bus, "b");
    await bus.clock.advance(HB * 2);
    const late: ShardEvent[] = [];
    const it = a.node.events();
    const first = await it.next();
    expect(first.value).toMatchObject({ type: "members", members: ["a", "b"] });
    late.push(first.value as ShardEvent);
    void (async () => {
      for await (const e of it) late.push(e);
    })();
    await start(bus, "c");
    await bus.clock.advance(HB);
    expect(replay(late)).toEqual(a.node.ownedPartitions());
  });

  it("a node that cannot see its own heartbeats fences itself, never claims everything, and recovers", async () => {
    const bus = setup();
    const a = await start(bus, "a");
    const b = await start(bus, "b");
    await bus.clock.advance(HB * 2);
    a.ep.disconnect();
    let maxOwned = 0;
    for (let t = 0; t < TTL * 3; t += 10) {
      await bus.clock.advance(10);
      maxOwned = Math.max(maxOwned, a.node.ownedPartitions().length);
    }
    expect(maxOwned).toBeLessThan(64); // never took b's partitions while alone
    expect(a.node.fenced).toBe(true);
    expect(a.node.ownedPartitions()).toEqual([]);
    expect(a.node.place("anything")).not.toBe("a");
    expect(a.events.some((e) => e.type === "fenced")).toBe(true);
    expect(b.node.members()).toEqual(["b"]);
    expect(b.node.ownedPartitions()).toHaveLength(64);
    a.ep.reconnect();
    await bus.clock.advance(HB * 2);
    expect(a.node.fenced).toBe(false);
    expect(a.events.some((e) => e.type === "unfenced")).toBe(true);
    expect(a.node.members()).toEqual(["a", "b"]);
    expect(b.node.members()).toEqual(["a", "b"]);
    expect(a.node.ownedPartitions().length + b.node.ownedPartitions().length).toBe(64);
  });

  it("refuses to start when the running cluster's config differs, naming the setting", async () => {
    const bus = setup();
    await start(bus, "a");
    await bus.clock.advance(HB);
    const err = await start(bus, "b", { ringSize: 128 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigMismatchError);
    expect((err as Error).message).toMatch(/ringSize is 128 here but 64/);
    const err2 = await start(bus, "c", { ttlMs: 400 }).catch((e: unknown) => e);
    expect((err2 as ConfigMismatchError).differences.map((d) => d.setting)).toEqual(["ttlMs"]);
  });

  it("running nodes ignore and count heartbeats with a different config", async () => {
    const bus = setup();
    const a = await start(bus, "a");
    const rogue = bus.connect("rogue");
    const cfg = { ringSize: 32, heartbeatMs: HB, ttlMs: TTL, skewMs: SKEW, hash: "murmur3-32-hrw/1+caps/1" };
    rogue.publish(
      membershipSubjects("t").heartbeat,
      packr.pack({ v: 1, k: "hb", id: "x", at: bus.clock.now(), cfg }),
    );
    await bus.clock.advance(5);
    expect(a.node.members()).toEqual(["a"]);
    expect(a.node.stats().configMismatch).toBe(1);
  });

  it("drops and counts malformed and hostile input without crashing", async () => {
    const bus = setup();
    const a = await start(bus, "a");
    const rogue = bus.connect("rogue");
    const s = membershipSubjects("t");
    const now = bus.clock.now();
    const cfg = a.node.config;
    const bad: Uint8Array[] = [
      new Uint8Array([0xc1, 0xff, 0x00]),
      new Uint8Array(0),
      packr.pack("just a string"),
      packr.pack([1, 2, 3]),
      packr.pack({ v: 2, k: "hb", id: "x", at: now, cfg }),
      packr.pack({ v: 1, k: "hb", id: "bad id with spaces", at: now, cfg }),
      packr.pack({ v: 1, k: "hb", id: "x".repeat(1000), at: now, cfg }),
      packr.pack({ v: 1, k: "hb", id: "x", at: "yesterday", cfg }),
      packr.pack({ v: 1, k: "hb", id: "x", at: 1e300, cfg }),
      packr.pack({ v: 1, k: "hb", id: "x", at: -5, cfg }),
      packr.pack({ v: 1, k: "hb", id: "x", at: now, cfg: { ringSize: "64" } }),
      packr.pack({ v: 1, k: "leave", id: "a" }),
      packr.pack({ v: 1, k: "nope", id: "x" }),
      packr.pack({ v: 1, k: "table", id: "x", cfg, leases: [], left: [] }),
    ];
    for (const b of bad) rogue.publish(s.heartbeat, b);
    rogue.publish(s.leave, new Uint8Array([1, 2, 3]));
    // a heartbeat from the far future is rejected by the skew rule
    rogue.publish(s.heartbeat, packr.pack({ v: 1, k: "hb", id: "x", at: now + SKEW + 1000, cfg }));
    await bus.clock.advance(5);
    const st = a.node.stats();
    expect(st.malformed).toBe(bad.length + 1);
    expect(st.rejectedFuture).toBe(1);
    expect(a.node.members()).toEqual(["a"]);
    // a hostile sync reply with too many entries is dropped
    await bus.clock.advance(HB * 3);
    expect(a.node.members()).toEqual(["a"]);
  });

  it("an observer tracks the ring, owns nothing and is not a member", async () => {
    const bus = setup();
    const a = await start(bus, "a");
    await start(bus, "b");
    await bus.clock.advance(HB);
    const o = await start(bus, "obs", { observer: true });
    expect(o.node.members()).toEqual(["a", "b"]);
    expect(o.node.ownedPartitions()).toEqual([]);
    for (let i = 0; i < 200; i++) expect(o.node.place(`k${i}`)).toBe(a.node.place(`k${i}`));
    await bus.clock.advance(TTL * 3);
    expect(a.node.members()).toEqual(["a", "b"]);
    expect(o.node.fenced).toBe(false);
  });

  it("property: after any run of joins, leaves, crashes and cut-offs, settled nodes agree", async () => {
    type Op =
      | { op: "join" }
      | { op: "leave"; i: number }
      | { op: "crash"; i: number }
      | { op: "cut"; i: number }
      | { op: "heal"; i: number }
      | { op: "wait"; ms: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant({ op: "join" as const }),
      fc.record({ op: fc.constant("leave" as const), i: fc.nat(9) }),
      fc.record({ op: fc.constant("crash" as const), i: fc.nat(9) }),
      fc.record({ op: fc.constant("cut" as const), i: fc.nat(9) }),
      fc.record({ op: fc.constant("heal" as const), i: fc.nat(9) }),
      fc.record({ op: fc.constant("wait" as const), ms: fc.integer({ min: 1, max: 400 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 1, maxLength: 14 }),
        fc.integer({ min: 0, max: 1e6 }),
        async (ops, seed) => {
          const bus = setup({ jitterMs: 3, duplicate: 0.05, random: seededRandom(seed) });
          const live: Sim[] = [await start(bus, "n0")];
          let n = 1;
          for (const o of ops) {
            const pick = "i" in o ? live[o.i % Math.max(1, live.length)] : undefined;
            if (o.op === "join") live.push(await start(bus, `n${n++}`));
            else if (o.op === "wait") await bus.clock.advance(o.ms);
            else if (pick && o.op === "leave") {
              await pick.node.close();
              live.splice(live.indexOf(pick), 1);
            } else if (pick && o.op === "crash") {
              await pick.ep.close();
              live.splice(live.indexOf(pick), 1);
            } else if (pick && o.op === "cut") pick.ep.disconnect();
            else if (pick && o.op === "heal") pick.ep.reconnect();
          }
          for (const s of live) s.ep.reconnect();
          await bus.clock.advance(TTL + HB * 3);
          const ids = live.map((s) => s.node.id).sort();
          for (const s of live) {
            expect(s.node.members()).toEqual(ids);
            expect(s.node.fenced).toBe(false);
            expect(replay(s.events)).toEqual(s.node.ownedPartitions());
          }
          const all = live.flatMap((s) => s.node.ownedPartitions()).sort((x, y) => x - y);
          expect(all).toEqual(live.length ? Array.from({ length: 64 }, (_, i) => i) : []);
          for (const s of live) await s.node.close();
        },
      ),
      { numRuns: 200, verbose: 1 },
    );
  });
});

describe("node ids", () => {
  it("refuses to start a second node with the id of a live member", async () => {
    const bus = setup();
    await start(bus, "a");
    await start(bus, "b");
    await bus.clock.advance(HB);
    const err = await start(bus, "a").catch((e: unknown) => e);
    expect((err as Error).name).toBe("DuplicateNodeIdError");
    expect((err as Error).message).toMatch(/already live/);
  });
});

describe("cut off at any heartbeat phase", () => {
  it.each([10, 30, 50, 70, 90])(
    "a node cut off %i ms into the beat never acquires its peers' partitions",
    async (phase) => {
      const bus = setup();
      const b = await start(bus, "b");
      await bus.clock.advance(phase);
      const a = await start(bus, "a");
      await bus.clock.advance(300);
      const cut = a.events.length;
      a.ep.disconnect();
      for (let t = 0; t < 900; t += 5) await bus.clock.advance(5);
      expect(a.node.fenced).toBe(true);
      expect(a.events.slice(cut).filter((e) => e.type === "acquired")).toEqual([]);
      expect(b.node.ownedPartitions()).toHaveLength(64);
    },
  );
});
