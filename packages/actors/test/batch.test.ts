// Batching per destination on the simulated bus: asks of one turn travel as one message, each
// keeps its own correlation, deadline and error, batches split below max_payload, a slow handler
// holds back only its own reply, and a malformed entry is dropped without failing the others.
import {
  ACTOR_PROTOCOL,
  ACTOR_WIRE_VERSION,
  BATCH_VERSION,
  DeadlineExceededError,
  Entity,
  HandlerError,
  nodeSubject,
} from "@keyhold/actors";
import { ConfigMismatchError, ShardNode, silentLogger } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { Counter, drive, HB, startOn, TTL } from "./support.js";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** An entity whose `hold` handler waits until the test opens the gate. */
class Gated extends Entity<{ n: number }> {
  static readonly type = "gated";
  static open: (() => void) | undefined;
  initialState() {
    return { n: 0 };
  }
  async hold() {
    await new Promise<void>((r) => {
      Gated.open = r;
    });
    return "held";
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
  async slowAdd(by: number) {
    await new Promise<void>((r) => {
      Gated.open = r;
    });
    this.state.n += by;
    return this.state.n;
  }
}

const ask = (id: string, key: string, a: unknown[] = [1], h = "add", t = "counter") => ({
  v: ACTOR_WIRE_VERSION,
  k: "ask",
  id,
  t,
  key,
  h,
  a,
  hop: 0,
});

describe("batching per destination", () => {
  it("asks sent in one turn travel as one message, each answered with its own result", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await startOn(bus, "a");
    const c = await startOn(bus, "c", {}, true);
    const before = { ...c.stats().batches };
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    const results = await drive(bus, Promise.all(keys.map((k, i) => c.ref(Counter, k).add(i + 1))));
    expect(results).toEqual(keys.map((_, i) => i + 1));
    const after = c.stats().batches;
    expect(after.entries - before.entries).toBe(50);
    expect(after.batches - before.batches).toBe(1);
    // The owner answered them in one reply batch too (all handled in the same turn).
    expect(a.stats().batches.replies).toBeGreaterThanOrEqual(50);
    expect(a.stats().batches.replyBatches).toBeLessThan(5);
    expect(a.stats().requests.batches).toBeGreaterThanOrEqual(1);
  });

  it("an error or a deadline belongs to its own ask; a slow handler holds back only its reply", async () => {
    const bus = new SimBus(new VirtualClock());
    await startOn(bus, "a", { entities: [Counter, Gated] });
    const c = await startOn(bus, "c", { entities: [Counter, Gated] }, true);
    const slow = c.ref(Gated, "slow").ask("hold", [], { timeout: 300 });
    const failing = c.ref(Counter, "x").fail("boom");
    const fine = c.ref(Counter, "y").add(7);
    slow.catch(() => {});
    failing.catch(() => {});
    expect(await drive(bus, fine)).toBe(7);
    const err = await drive(bus, failing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandlerError);
    expect(String(err)).toContain("boom");
    const late = await drive(bus, slow).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(DeadlineExceededError);
    Gated.open?.();
  });

  it("a first attempt that times out goes on with the same id: the owner applies the ask once", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await startOn(bus, "a", { entities: [Counter, Gated] });
    const c = await startOn(bus, "c", { entities: [Counter, Gated], attemptTimeoutMs: 100 }, true);
    const slow = c.ref(Gated, "once").ask("slowAdd", [1], { timeout: 5_000 });
    slow.catch(() => {});
    // The handler holds the first attempt past its 100 ms: the ask retries (same id) and the
    // owner's dedupe cache parks the retries on the first attempt instead of running them.
    await drive(
      bus,
      (async () => {
        while (c.stats().router.retries < 2) await bus.clock.advance(10);
      })(),
    );
    Gated.open?.();
    expect(await drive(bus, slow)).toBe(1);
    expect(a.stats().requests.deduplicated).toBeGreaterThanOrEqual(1);
    expect(await drive(bus, c.ref(Gated, "once").add(0))).toBe(1);
    expect(c.stats().router.failed).toBe(0);
  });

  it("a burst larger than max_payload is split into batches the server accepts", async () => {
    const bus = new SimBus(new VirtualClock(), { maxPayload: 8 * 1024 });
    await startOn(bus, "a");
    const c = await startOn(bus, "c", {}, true);
    const blob = "x".repeat(1000);
    const before = c.stats().batches.batches;
    const got = await drive(
      bus,
      Promise.all(Array.from({ length: 40 }, (_, i) => c.ref(Counter, `big${i}`).echo(`${i}:${blob}`))),
    );
    expect(got.map((g) => String(g).split(":")[0])).toEqual(Array.from({ length: 40 }, (_, i) => `${i}`));
    // 40 entries of about 1 KB under a limit of 8 KB - headroom: several batches, none refused.
    expect(c.stats().batches.batches - before).toBeGreaterThanOrEqual(5);
    expect(c.stats().router.retries).toBe(0);
  });

  it("batchMaxEntries bounds the entries of one batch", async () => {
    const bus = new SimBus(new VirtualClock());
    await startOn(bus, "a");
    const c = await startOn(bus, "c", { batchMaxEntries: 8 }, true);
    const before = c.stats().batches.batches;
    await drive(bus, Promise.all(Array.from({ length: 40 }, (_, i) => c.ref(Counter, `m${i}`).add(1))));
    expect(c.stats().batches.batches - before).toBe(5);
  });

  it("a malformed entry is counted, logged and dropped; the other entries are served", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await startOn(bus, "a");
    const raw = bus.connect("raw");
    const inbox = raw.inbox();
    const replies: { q: number; r: unknown }[] = [];
    raw.subscribe(inbox, (m) => {
      // Batch version 2: each reply is embedded in the reply batch, not wrapped in a bin.
      const batch = packr.unpack(m.data) as { k: string; bv: number; r: [number, { r: unknown }][] };
      expect(batch.bv).toBe(BATCH_VERSION);
      for (const [q, reply] of batch.r) replies.push({ q, r: reply.r });
    });
    const entries = [
      [1, ask("0123456789abcdef", "good1", [2])],
      [2, new Uint8Array([0xc1, 0xc1])], // a bin (batch version 1's entries), not a message
      ["three", ask("1123456789abcdef", "bad-q")], // correlation not a number
      [4, ask("2123456789abcdef", "", [1])], // empty key
      [0, ask("3123456789abcdef", "ask-as-tell")], // an ask without a correlation number
      [6, packr.pack({ v: 1, k: "pull", p: 1, from: "raw" })], // not an ask or a tell
      [7, ask("4123456789abcdef", "good2", [3])],
    ];
    raw.publish(
      nodeSubject("t", "a"),
      packr.pack({ v: 1, k: "batch", bv: BATCH_VERSION, rs: inbox, m: entries }),
    );
    await drive(
      bus,
      (async () => {
        while (replies.length < 2) await bus.clock.advance(1);
      })(),
    );
    await bus.clock.advance(20);
    expect(replies.sort((x, y) => x.q - y.q)).toEqual([
      { q: 1, r: 2 },
      { q: 7, r: 3 },
    ]);
    expect(a.stats().requests.malformedEntries).toBe(5);
    // A batch of another version is refused whole.
    const malformed = a.stats().requests.malformed;
    raw.publish(nodeSubject("t", "a"), packr.pack({ v: 1, k: "batch", bv: 99, rs: inbox, m: entries }));
    await bus.clock.advance(10);
    expect(a.stats().requests.malformed).toBe(malformed + 1);
  });

  it("a node speaking another wire protocol (or none) is refused at join", async () => {
    const bus = new SimBus(new VirtualClock());
    await startOn(bus, "a");
    expect(ACTOR_PROTOCOL).toMatch(/batch\/2\+copies\/2$/);
    for (const [id, protocol] of [
      ["old", undefined],
      ["batch-1", "keyhold-actors/1+batch/1"],
      ["other", "keyhold-actors/1+batch/3"],
      // Copy version 1: every record unpacked by its replicas on arrival.
      ["copies-1", "keyhold-actors/1+batch/2+copies/1"],
    ] as const) {
      const started = ShardNode.start({
        transport: bus.connect(id),
        clock: bus.clock,
        cluster: "t",
        nodeId: id,
        heartbeatMs: HB,
        ttlMs: TTL,
        skewMs: 200,
        logger: silentLogger,
        ...(protocol ? { protocol } : {}),
      });
      const err = await drive(bus, started).catch((e: unknown) => e);
      expect(err, id).toBeInstanceOf(ConfigMismatchError);
      const diff = (err as ConfigMismatchError).differences;
      expect(diff).toEqual([{ setting: "wire protocol", ours: protocol ?? "none", theirs: ACTOR_PROTOCOL }]);
    }
  });

  it("property: under duplicates and reordering, batching loses and doubles nothing", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        fc.integer({ min: 0, max: 6 }),
        fc.array(fc.integer({ min: 0, max: 11 }), { minLength: 1, maxLength: 60 }),
        async (seed, duplicate, jitterMs, picks) => {
          let s = seed;
          const random = () => {
            s = (s * 1103515245 + 12345) % 2147483648;
            return s / 2147483648;
          };
          const bus = new SimBus(new VirtualClock(), { duplicate, jitterMs, random });
          const a = await startOn(bus, "a");
          await startOn(bus, "b");
          const c = await startOn(bus, "c", { batchMaxEntries: 7 }, true);
          const expected = new Map<string, number>();
          const sent = picks.map((p) => {
            const key = `p${p}`;
            expected.set(key, (expected.get(key) ?? 0) + 1);
            return c.ref(Counter, key).add(1);
          });
          const results = await drive(bus, Promise.all(sent));
          // Every ask answered once, with a distinct running count per key: none lost, none doubled.
          const byKey = new Map<string, number[]>();
          picks.forEach((p, i) => {
            byKey.set(`p${p}`, [...(byKey.get(`p${p}`) ?? []), results[i] as number]);
          });
          for (const [key, seen] of byKey) {
            expect([...seen].sort((x, y) => x - y)).toEqual(seen.map((_, i) => i + 1));
            expect(await drive(bus, a.ref(Counter, key).get())).toBe(expected.get(key));
          }
        },
      ),
      { numRuns: 25, verbose: true },
    );
  });
});
