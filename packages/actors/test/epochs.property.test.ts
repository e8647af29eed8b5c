// Property: with fencing tokens (a shared MemoryEpochs standing in for the KV bucket), for
// random runs of joins, graceful leaves, crashes (one at a time, with recovery), asks, and
// replica copies and hand-off pulls replayed late, over a bus that delays, reorders and
// duplicates deliveries: no acknowledged increment is lost or applied twice, and the writes of
// each key, in history order, carry non-decreasing tokens (a later write never runs under an
// older owner's epoch). Replayed old copies are refused, never installed.
import { MemoryEpochs, type Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { SimBus, seededRandom, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Tokened } from "./fixtures/tokened.js";
import { drive, HB, startOn, TTL } from "./support.js";

type Op =
  | { op: "join" }
  | { op: "leave"; i: number }
  | { op: "crash"; i: number }
  | { op: "asks"; n: number; from: number }
  | { op: "replay"; i: number; count: number }
  | { op: "wait"; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ op: "join" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("leave" as const), i: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("crash" as const), i: fc.nat(7) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("asks" as const),
      n: fc.integer({ min: 1, max: 20 }),
      from: fc.nat(7),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("replay" as const),
      i: fc.nat(10_000),
      count: fc.integer({ min: 1, max: 20 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("wait" as const), ms: fc.integer({ min: 1, max: 300 }) }),
  },
);

async function scenario(
  ops: readonly Op[],
  seed: number,
  nodeOpts: { joinStepPartitions?: number } = {},
): Promise<void> {
  const bus = new SimBus(new VirtualClock(), { jitterMs: 4, duplicate: 0.1, random: seededRandom(seed) });
  const epochs = new MemoryEpochs();
  let next = 0;
  const start = () => {
    const id = `n${next++}`;
    return startOn(bus, id, {
      cluster: "f",
      entities: [Tokened],
      epochs: epochs.source(id),
      logger: silentLogger,
      ...nodeOpts,
    });
  };
  const nodes: Sharding[] = [await start(), await start(), await start()];
  const client = await startOn(bus, "client", { cluster: "f", entities: [Tokened] }, true);
  // Every request between nodes, kept to be replayed late (a delayed duplicate).
  const seen: { subject: string; data: Uint8Array }[] = [];
  const spy = bus.connect("spy");
  spy.subscribe("keyhold.f.node.*", (m) => {
    if (seen.length < 5000) seen.push({ subject: m.subject, data: m.data });
  });
  const replayer = bus.connect("replayer");
  const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
  const acked = new Map<string, [number, number][]>();
  let failures = 0;
  const inflight: Promise<unknown>[] = [];
  for (const o of ops) {
    if (o.op === "join") nodes.push(await start());
    else if (o.op === "leave" && nodes.length > 3) {
      const [gone] = nodes.splice(o.i % nodes.length, 1);
      inflight.push(gone!.close());
    } else if (o.op === "crash" && nodes.length > 3) {
      const [gone] = nodes.splice(o.i % nodes.length, 1);
      await gone!.node.transport.close();
      // One crash at a time: the ring recovers (take-over and refill) before anything else.
      await drive(bus, Promise.all(inflight.splice(0)));
      await bus.clock.advance(TTL + HB * 4);
    } else if (o.op === "asks") {
      for (let i = 0; i < o.n; i++) {
        const k = keys[(o.from * 5 + i) % keys.length]!;
        inflight.push(
          client
            .ref(Tokened, k)
            .add()
            .then((r) => acked.set(k, [...(acked.get(k) ?? []), r]))
            .catch(() => {
              failures++;
            }),
        );
      }
    } else if (o.op === "replay" && seen.length > 0) {
      for (let i = 0; i < o.count; i++) {
        const m = seen[(o.i + i * 31) % seen.length]!;
        replayer.request(m.subject, m.data, { timeout: 200 }).catch(() => {});
      }
    } else if (o.op === "wait") await bus.clock.advance(o.ms);
  }
  await drive(bus, Promise.all(inflight));
  await bus.clock.advance(TTL + HB * 4);
  expect(failures).toBe(0);
  for (const k of keys) {
    const writes = [...(acked.get(k) ?? [])].sort((a, b) => a[0] - b[0]);
    // Each acknowledged increment applied once: the values are exactly 1..count, and the
    // final state holds them all.
    expect(
      writes.map(([n]) => n),
      k,
    ).toEqual(writes.map((_, i) => i + 1));
    for (let i = 1; i < writes.length; i++)
      expect(writes[i]![1], `${k}: write ${writes[i]![0]} ran under an older epoch`).toBeGreaterThanOrEqual(
        writes[i - 1]![1],
      );
    expect(await drive(bus, client.ref(Tokened, k).get()), k).toBe(writes.length);
  }
  for (const n of [...nodes, client]) await drive(bus, n.close());
}

describe("epoch properties (simulated bus)", () => {
  it("no acknowledged write lost or doubled; writes of a key carry non-decreasing epochs", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 1e9 }),
        (ops, seed) => scenario(ops, seed),
      ),
      {
        numRuns: Number(process.env.KH_PROPERTY_RUNS ?? 100),
        verbose: 1,
      },
    );
  });

  // Recorded replays, each of a past bug: each fails with its fix reverted (fix commit named).
  // Both join and leave at once (joinStepPartitions: 0), as when they were found: with the
  // default stepped joins neither failed any more with its fix reverted.
  // A replicated ask whose two replicas went at once (one leaving, one crashing) as its write
  // went out: QuorumError until the ring dropped them. The router now retries it within the
  // ask's deadline (router.ts), and the ask succeeds (seed 671936694; fix 47db444). The bus seed
  // it was found with (29444582) no longer misses the quorum even with joins at once; bus seed
  // 70, the first of a scan of 1-150 with joins at once, does (QuorumError) without the fix.
  it("replay: an ask whose two replicas went at once is retried, not failed (seed 671936694)", async () => {
    await scenario(
      [
        { op: "join" },
        { op: "leave", i: 1 },
        { op: "join" },
        { op: "join" },
        { op: "leave", i: 6 },
        { op: "asks", n: 1, from: 2 },
        { op: "crash", i: 3 },
        { op: "crash", i: 0 },
      ],
      70,
      { joinStepPartitions: 0 },
    );
  });

  // Random search (seed 331183657): n2 left and n4 joined at once; n0, whose view did not have
  // n4 yet, took partition 22 a moment after n4 did, and its pull fenced the replicas above n4's
  // epoch. n4 served under the lower one, its first copy (the final get of k0) was refused
  // stale, the partition given up, and the take-back waited, for the departed n2, past the get's
  // deadline. Now an acquirer overtaken by a newer take takes another epoch before it serves
  // (fencing.ts overtaken; fix 8efa5d4).
  it("replay: an acquirer overtaken by a newer take takes another epoch (seed 331183657)", async () => {
    await scenario(
      [
        { op: "join" },
        { op: "asks", n: 6, from: 3 },
        { op: "leave", i: 2 },
        { op: "join" },
        { op: "replay", i: 0, count: 1 },
      ],
      11,
      { joinStepPartitions: 0 },
    );
  });
});
