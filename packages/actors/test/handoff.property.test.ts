// Property: for random runs of joins, graceful leaves and asks over a bus that delays,
// reorders and duplicates deliveries, no acknowledged increment is lost or applied twice, no
// ask fails, and once membership settles each key lives on exactly one node.
import type { Sharding } from "@keyhold/actors";
import { type Logger, silentLogger } from "@keyhold/core";
import { SimBus, seededRandom, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Counter, drive, HB, startOn, TTL } from "./support.js";

export type Op =
  | { op: "join" }
  | { op: "leave"; i: number }
  | { op: "asks"; n: number; from: number }
  | { op: "wait"; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ op: "join" as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("leave" as const), i: fc.nat(7) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("asks" as const),
      n: fc.integer({ min: 1, max: 30 }),
      from: fc.nat(7),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("wait" as const), ms: fc.integer({ min: 1, max: 300 }) }),
  },
);

/** One run; throws (through expect) when a property is violated. */
export async function scenario(
  ops: readonly Op[],
  seed: number,
  logger: Logger = silentLogger,
  nodeOpts: { joinStepPartitions?: number } = {},
): Promise<void> {
  const bus = new SimBus(new VirtualClock(), { jitterMs: 3, duplicate: 0.1, random: seededRandom(seed) });
  const nodes: Sharding[] = [
    await startOn(bus, "n0", { logger, ...nodeOpts }),
    await startOn(bus, "n1", { logger, ...nodeOpts }),
  ];
  const client = await startOn(bus, "client", {}, true);
  const acked = new Map<string, number>();
  let failures = 0;
  let next = 2;
  const keys = Array.from({ length: 25 }, (_, i) => `k${i}`);
  const inflight: Promise<unknown>[] = [];
  for (const o of ops) {
    if (o.op === "join") nodes.push(await startOn(bus, `n${next++}`, { logger, ...nodeOpts }));
    else if (o.op === "leave" && nodes.length > 1) {
      const [gone] = nodes.splice(o.i % nodes.length, 1);
      inflight.push(gone!.close());
    } else if (o.op === "asks") {
      const sender = o.from % 2 === 0 || nodes.length === 0 ? client : nodes[o.from % nodes.length]!;
      for (let i = 0; i < o.n; i++) {
        const k = keys[(o.from * 7 + i) % keys.length]!;
        inflight.push(
          sender
            .ref(Counter, k)
            .add(1)
            .then(() => acked.set(k, (acked.get(k) ?? 0) + 1))
            .catch((e: unknown) => {
              failures++;
              logger.warn(`ask failed: ${String(e)}`);
            }),
        );
      }
    } else if (o.op === "wait") await bus.clock.advance(o.ms);
  }
  await drive(bus, Promise.all(inflight));
  // Joining step by step takes a heartbeat per step: let the last join finish too.
  await bus.clock.advance(TTL + HB * 3 + (nodeOpts.joinStepPartitions !== 0 ? HB * 30 : 0));
  expect(failures).toBe(0);
  for (const k of keys) {
    expect(await drive(bus, client.ref(Counter, k).get()), `key ${k}`).toBe(acked.get(k) ?? 0);
    const holders = nodes.filter((n) => n.stats().host.known > 0 && n.node.place(k) === n.node.id);
    expect(holders.length).toBeLessThanOrEqual(1);
  }
  const known = nodes.reduce((s, n) => s + n.stats().host.known, 0);
  expect(known).toBe(keys.length);
  for (const n of [...nodes, client]) await drive(bus, n.close());
}

describe("hand-off properties (simulated bus)", () => {
  it("no acknowledged write lost or doubled; one live copy per key after settling", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 1e9 }),
        (ops, seed) => scenario(ops, seed),
      ),
      {
        numRuns: Number(process.env.KH_PROPERTY_RUNS ?? 200),
        verbose: 1,
        // Found by this property: a local ask accepted just before its node closes, whose
        // entity moves away during the close, was rerouted through a router that already
        // refused new asks, and failed with ShardingClosedError.
        examples: [
          [
            [
              { op: "asks", n: 1, from: 1 },
              { op: "leave", i: 7 },
              { op: "asks", n: 1, from: 0 },
            ],
            1,
          ],
          [
            [
              { op: "asks", n: 1, from: 1 },
              { op: "leave", i: 3 },
              { op: "leave", i: 0 },
            ],
            1,
          ],
        ],
      },
    );
  });

  // The one above joins step by step ("auto", the default); this one with fixed steps, and 0
  // (join at once, the default before).
  it("the same when nodes join and leave with a fixed step, or at once (joinStepPartitions)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 1e9 }),
        fc.integer({ min: 0, max: 8 }),
        (ops, seed, step) => scenario(ops, seed, silentLogger, { joinStepPartitions: step }),
      ),
      { numRuns: Number(process.env.KH_PROPERTY_RUNS ?? 100), verbose: 1 },
    );
  });
});
