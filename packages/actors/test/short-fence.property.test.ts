// Property: a fence too short for a take-over (fence-witness.ts) never installs a pre-fence
// record over a newer acknowledged write. Three nodes serve a replicated register-like entity
// on a bus that delays, reorders and duplicates every delivery, while random nodes stall for
// random lengths around the lease (L = 200 ms, H ≈ 289 ms, T = 300 ms), are cut off for a while
// (so that re-acquiring pulls miss them), and receive stray pulls of random partitions (each
// voids the proof for its partition). No acknowledged write of the replicated entity is lost
// (their partitions wait instead of restarting, or keep their records when the fence proves
// nobody took over), and every acknowledgement is made under a lease.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Op, scenario } from "./stall-scenario.js";
import { HB, TTL } from "./support.js";

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
          async (ops, seed) => {
            keptTotal += await scenario(ops, seed, resume);
          },
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

  // Found from seed 14 (also 15 and 18), on the code from before the short-fence path too: n2
  // acknowledges k0's op0 with copies on n0 and n1; n2 fences, n0 takes p22 over from its copy and
  // hands it back to n2, forgetting it on the pull's ack; n2 stalls again before serving, n1 is cut
  // off, and n0 takes p22 again with no copy left: op0 was gone. Now a node that hands records off
  // keeps them as copies where it is still a replica (handoff.ts ack). Fails without that.
  it("a hand-off back to a stalled owner keeps the copy on the old holder (seed 14): nothing acknowledged lost", async () => {
    await scenario(
      [
        { op: "asks", n: 1, from: 0 },
        { op: "stall", i: 0, ms: 180, lag: 0, cut: 1 },
        { op: "stall", i: 2, ms: 278, lag: 17, cut: null },
        { op: "stall", i: 2, ms: 707, lag: 93, cut: null },
        { op: "asks", n: 1, from: 0 },
        { op: "wait", ms: 1 },
      ],
      1,
      "timers-first",
      0,
    );
  }, 120_000);

  // Found from seed 19: n0 takes p22 over while n2 is stalled and acknowledges k0's op0 with
  // copies on n0 and n1; n1 and then n0 are cut off and fence; n2 comes back alone, holding
  // nothing of p22, and its pull of p22 reaches neither n0 nor n1. It used to serve k0 from
  // nothing (op1 then acknowledged without op0). Now an acquirer whose pull missed a write quorum
  // of the partition's replica set waits for them (await-copy.ts `quorum`). Fails without that.
  it("every node faulted in turn (seed 19): an acquirer that reached no replica of a partition waits; nothing acknowledged lost", async () => {
    await scenario(
      [
        { op: "stall", i: 0, ms: 180, lag: 0, cut: 2 },
        { op: "asks", n: 1, from: 0 },
        { op: "stall", i: 2, ms: 780, lag: 2, cut: 1 },
        { op: "cut", i: 0, ms: 927 },
        { op: "asks", n: 1, from: 0 },
      ],
      6,
      "timers-first",
      0,
    );
  }, 120_000);

  // Found from seed 35 (io-first) with joins at once (it fails on 3ead3c7 too). n0 acknowledges
  // k11's op1 with copies on n0 and n1 while n2 is cut off; n2 fences, n1 is cut off and fences.
  // n2 rejoins beside n0 alone; n0's refill to it is refused and n0 gives p24 up, then is cut off.
  // n2's view {n0, n2} lasted a ttl, so it forgot n1 and took p24 with a pull that missed n0 and
  // n1, one of them outside the replica set it counted: it served k11 without op1. Now a node
  // counts the members of the view its fence replaced until a view shows them again
  // (await-copy.ts `unseen`). Fails without that.
  it("a fenced node that rejoined counts the members it has not seen since (seed 35, joins at once): nothing acknowledged lost", async () => {
    await scenario(
      [
        { op: "asks", n: 2, from: 18 },
        { op: "cut", i: 2, ms: 531 },
        { op: "stall", i: 2, ms: 875, lag: 20, cut: 1 },
        { op: "asks", n: 2, from: 42 },
        { op: "stall", i: 1, ms: 180, lag: 9, cut: 0 },
        { op: "stall", i: 0, ms: 180, lag: 0, cut: null },
      ],
      24,
      "io-first",
      0,
    );
  }, 120_000);

  // Found from seed 1715785318 (both variants; this is the timers-first one, stepped joins). n0
  // is cut off (n1 stalled, so dropped from n0's view first) and fences; n2 acknowledges k0's op0
  // with a copy on n1, back from its stall, then n1 is cut off and n2 too. n0 comes back; the
  // view synced at its reconnect shows it n2 (stale) and lasts a ttl, so n0 forgot n1 and took
  // p22 with a pull that missed n1 and n2, one of them outside the replica set it counted: op1
  // was acknowledged without op0. Now a fence counts every member of the views the node still
  // counted (not only the last one's), and only a view the node is in shows a member again
  // (await-copy.ts viewChanged). Fails without that.
  it("a fence counts the members dropped just before it (seed 1715785318): nothing acknowledged lost", async () => {
    await scenario(
      [
        { op: "stall", i: 1, ms: 584, lag: 6, cut: 0 },
        { op: "asks", n: 1, from: 0 },
        { op: "stall", i: 0, ms: 50, lag: 0, cut: 1 },
        { op: "asks", n: 1, from: 0 },
        { op: "stall", i: 0, ms: 114, lag: 86, cut: null },
        { op: "stall", i: 0, ms: 205, lag: 95, cut: null },
        { op: "stall", i: 0, ms: 180, lag: 6, cut: 2 },
      ],
      589465722,
      "timers-first",
    );
  }, 120_000);
});
