// Property: a fence too short for a take-over (fence-witness.ts) never installs a pre-fence
// record over a newer acknowledged write. Three nodes serve a replicated register-like entity
// on a bus that delays, reorders and duplicates every delivery, while random nodes stall for
// random lengths around the lease (L = 200 ms, H ≈ 289 ms, T = 300 ms), are cut off for a while
// (so that re-acquiring pulls miss them), and receive stray pulls of random partitions (each
// voids the proof for its partition). No acknowledged write of the replicated entity is lost
// (their partitions wait instead of restarting, or keep their records when the fence proves
// nobody took over), and every acknowledgement is made under a lease.
import { Entity, type Sharding } from "@keyhold/actors";
import { SimBus, seededRandom, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encode, nodeSubject } from "../src/wire.js";
import { Pausable } from "./pause.js";
import { drive, HB, startOn, TTL } from "./support.js";

class Log extends Entity<{ ops: string[] }> {
  static readonly type = "log";
  static readonly replicas = 3;
  initialState() {
    return { ops: [] };
  }
  add(op: string) {
    this.state.ops.push(op);
    return { n: this.state.ops.length, ep: this.fencingToken };
  }
  read() {
    return this.state.ops;
  }
}

type Op =
  | { op: "asks"; n: number; from: number }
  | { op: "stall"; i: number; ms: number; lag: number; cut: number | null }
  | { op: "cut"; i: number; ms: number }
  | { op: "pull"; i: number; p: number }
  | { op: "wait"; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("asks" as const),
      n: fc.integer({ min: 1, max: 8 }),
      from: fc.nat(50),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("stall" as const),
      i: fc.nat(2),
      // Mostly around the lease and H, sometimes past the take-over wait.
      ms: fc.oneof(fc.integer({ min: 180, max: 320 }), fc.integer({ min: 50, max: TTL * 4 })),
      // How long after an echo of the node's heartbeat the stall begins.
      lag: fc.integer({ min: 0, max: HB }),
      // A node cut off halfway through the stall (for 1.5 s): the re-acquiring pull misses it.
      cut: fc.option(fc.nat(2)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("cut" as const),
      i: fc.nat(2),
      ms: fc.integer({ min: 100, max: 1500 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("pull" as const), i: fc.nat(2), p: fc.nat(63) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("wait" as const), ms: fc.integer({ min: 1, max: 1500 }) }),
  },
);

/** Re-acquisitions that kept their pre-fence records on the fence's proof, over all runs. */
let keptTotal = 0;

async function scenario(
  ops: readonly Op[],
  seed: number,
  resume: "io-first" | "timers-first",
): Promise<void> {
  const bus = new SimBus(new VirtualClock(), { jitterMs: 4, duplicate: 0.1, random: seededRandom(seed) });
  const ids = ["n0", "n1", "n2"];
  const pausable = ids.map((id) => new Pausable(bus, id, { resume }));
  const owned: { key: string; node: string; leaseLeft: number }[] = [];
  const nodes: Sharding[] = [];
  for (const [i, p] of pausable.entries())
    nodes.push(
      await startOn(bus, ids[i]!, {
        cluster: "sp",
        transport: p.transport,
        clock: p.clock,
        entities: [Log],
        onAck: (a) =>
          owned.push({
            key: a.key,
            node: ids[i]!,
            leaseLeft: nodes[i]?.node.leaseRemainingMs() ?? 0,
          }),
      }),
    );
  const client = await startOn(
    bus,
    "client",
    { cluster: "sp", entities: [Log], attemptTimeoutMs: 150 },
    true,
  );
  const stray = bus.connect("stray");
  const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
  const acked: { key: string; op: string }[] = [];
  const inflight: Promise<unknown>[] = [];
  let seq = 0;
  const hb = bus.connect("spy");
  let echoes = 0;
  hb.subscribe("keyhold.sp.hb", () => echoes++);
  const cut = (i: number, ms: number) => {
    const link = pausable[i]!.link;
    link.disconnect();
    bus.clock.setTimeout(() => link.reconnect(), ms);
  };
  for (const o of ops) {
    if (o.op === "asks") {
      for (let i = 0; i < o.n; i++) {
        const key = keys[(o.from + i * 5) % keys.length]!;
        const op = `op${seq++}`;
        inflight.push(
          client
            .ref(Log, key)
            .add(op)
            .then(
              () => acked.push({ key, op }),
              () => {},
            ),
        );
      }
    } else if (o.op === "stall") {
      const p = pausable[o.i]!;
      if (p.paused) continue;
      // Some heartbeat echo (any node's), then the lag: stalls start at every phase of a beat.
      const before = echoes;
      for (let t = 0; t < HB && echoes === before; t++) await bus.clock.advance(1);
      await bus.clock.advance(o.lag);
      p.pause();
      await bus.clock.advance(Math.floor(o.ms / 2));
      if (o.cut !== null && o.cut !== o.i) cut(o.cut, 1500);
      await bus.clock.advance(o.ms - Math.floor(o.ms / 2));
      p.resume();
    } else if (o.op === "cut") {
      cut(o.i, o.ms);
    } else if (o.op === "pull") {
      // From nobody's owner: answered "wait", but it voids the proof for that partition.
      void stray
        .request(nodeSubject("sp", ids[o.i]!), encode({ v: 1, k: "pull", p: o.p, from: "stray" }), {
          timeout: 200,
        })
        .catch(() => {});
    } else await bus.clock.advance(o.ms);
  }
  await bus.clock.advance(1600); // every cut healed
  await drive(bus, Promise.all(inflight));
  // Past the copy waits' retention of a member out of view (6 × handoffTimeoutMs).
  await bus.clock.advance(TTL + HB * 3 + 13_000);
  // Every acknowledgement made under a lease. (Not the token order: a retried ask of a replicated
  // entity is answered from the result it first got, token included: dedupe.)
  for (const a of owned)
    expect(a.leaseLeft, `key ${a.key}: ${a.node} acknowledged without a lease`).toBeGreaterThan(0);
  for (const k of keys) {
    const have = new Set((await drive(bus, client.ref(Log, k).read(), 1, 120_000)) as string[]);
    for (const a of acked.filter((x) => x.key === k))
      expect(have.has(a.op), `key ${k}: acknowledged ${a.op} lost`).toBe(true);
  }
  keptTotal += nodes.reduce((n, s) => n + s.stats().handoff.preFenceLeaseKept, 0);
  if (process.env.SF_DEBUG)
    console.log(
      "kept",
      keptTotal,
      nodes.map((n) => JSON.stringify(n.stats().handoff)),
    );
  for (const n of [...nodes, client])
    await drive(
      bus,
      n.close().catch(() => {}),
    );
}

const asks = (n: number, from: number): Op => ({ op: "asks", n, from });
const stall = (i: number, ms: number, cut: number | null = null): Op => ({ op: "stall", i, ms, lag: 2, cut });
// Built to take the proof's path: n0's partitions move away (a stall past T) and come back, so
// its next tenures are not its first; then n1 is cut off while n0 stalls just past its lease.
const keptPath: [Op[], number] = [
  [asks(6, 0), stall(0, 700), { op: "wait", ms: 800 }, asks(6, 1), stall(0, 240, 1), asks(6, 2)],
  7,
];

// The random search (seeds 1 and 20261203) also found acknowledged writes lost where no
// short-fence path was taken: a retried ask answered from the recent asks of a write a lagging
// replica had refused. Fixed (slots.ts `unconfirmed`); both cases are in refused-write.test.ts.
describe("short fences (simulated bus)", () => {
  for (const resume of ["timers-first", "io-first"] as const)
    it(`random stalls, cuts and stray pulls (${resume}): no acknowledged write of a replicated entity lost`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(opArb, { minLength: 1, maxLength: 10 }),
          fc.integer({ min: 1, max: 1e9 }),
          (ops, seed) => scenario(ops, seed, resume),
        ),
        {
          numRuns: Number(process.env.KH_PROPERTY_RUNS ?? 40),
          verbose: 1,
          seed: Number(process.env.KH_PROPERTY_SEED ?? 2),
          examples: [keptPath],
        },
      );
      // The property is about that path: some run must have taken it.
      expect(keptTotal).toBeGreaterThan(0);
    }, 300_000);
});
