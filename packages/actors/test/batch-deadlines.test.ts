// The batcher on its own (batch.ts, batch-codec.ts): the deadline lane and its fallback time
// attempts out within one tick, replies settle only their own attempt, malformed reply entries
// are dropped and counted, and the envelope writer's output is plain msgpack of batch version 2.
import { DEADLINE_TICK_MS, Deadlines, RequestFailedError, silentLogger, type Transport } from "@keyhold/core";
import { VirtualClock } from "@keyhold/testing";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { BatchAttempt, Batcher } from "../src/batch.js";
import { EnvelopeWriter } from "../src/batch-codec.js";
import { BATCH_VERSION, type Decoded, type Reply } from "../src/wire.js";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

class Probe extends BatchAttempt {
  outcome: { at: number; reply?: Decoded<Reply>; err?: Error } | undefined;
  calls = 0;
  constructor(readonly clock: VirtualClock) {
    super();
  }
  onReply(reply: Decoded<Reply>): void {
    this.calls++;
    this.outcome = { at: this.clock.monoNow(), reply };
  }
  onFail(err: Error): void {
    this.calls++;
    this.outcome = { at: this.clock.monoNow(), err };
  }
}

function setup() {
  const clock = new VirtualClock();
  const published: { subject: string; data: Uint8Array; reply: string | undefined }[] = [];
  const transport = {
    publish: (subject: string, data: Uint8Array, _h?: unknown, reply?: string) => {
      published.push({ subject, data, reply });
    },
    subscribe: () => ({ unsubscribe: () => {} }),
    inbox: () => "_INBOX.test",
  } as unknown as Transport;
  const batcher = new Batcher({
    transport,
    clock,
    deadlines: new Deadlines(clock),
    logger: silentLogger,
    maxEntries: 512,
  });
  return { clock, batcher, published };
}

/** The q of each entry of a published request batch. */
function qsOf(data: Uint8Array): number[] {
  const b = packr.unpack(data) as { bv: number; m: [number, unknown][] };
  expect(b.bv).toBe(BATCH_VERSION);
  return b.m.map(([q]) => q);
}

describe("batcher deadlines", () => {
  it("attempts time out after their timeout and at most one tick later, lane and fallback alike", async () => {
    const { clock, batcher } = setup();
    const start = clock.monoNow();
    // 1000 ms attempts join the lane; a 100 ms one after them cannot (its deadline is earlier)
    // and takes the fallback; a 2000 ms one joins the lane again.
    const plan = [1000, 1000, 100, 1000, 2000, 250];
    const probes = plan.map((ms) => {
      const p = new Probe(clock);
      batcher.attach("node.a", new Uint8Array([0xc0]), ms, p);
      return p;
    });
    batcher.flush();
    for (let t = 0; t < 2200; t += 5) await clock.advance(5);
    plan.forEach((ms, i) => {
      const o = probes[i]!.outcome;
      expect(o?.err, `attempt ${i}`).toBeInstanceOf(RequestFailedError);
      expect((o!.err as RequestFailedError).reason).toBe("timeout");
      const late = o!.at - start - ms;
      expect(late, `attempt ${i} (${ms} ms) fired ${late} ms late`).toBeGreaterThanOrEqual(0);
      expect(late).toBeLessThanOrEqual(DEADLINE_TICK_MS + 5);
      expect(probes[i]!.calls).toBe(1);
    });
    expect(batcher.pending).toBe(0);
  });

  it("a reply settles only its own attempt; a late or duplicated one is counted as unmatched", async () => {
    const { clock, batcher, published } = setup();
    const a = new Probe(clock);
    const b = new Probe(clock);
    batcher.attach("node.a", new Uint8Array([0xc0]), 100, a);
    batcher.attach("node.a", new Uint8Array([0xc0]), 100, b);
    batcher.flush();
    expect(published).toHaveLength(1);
    expect(published[0]!.reply).toBe("_INBOX.test");
    const [qa, qb] = qsOf(published[0]!.data);
    const writer = new EnvelopeWriter();
    const ok = packr.pack({ v: 1, k: "ok", r: 42 });
    batcher.receive(writer.write({ qs: [qb!], data: [ok], bytes: ok.length + 10 }, undefined));
    expect(b.outcome?.reply).toEqual({ v: 1, k: "ok", r: 42 });
    expect(a.outcome).toBeUndefined();
    // The same reply again, then a's after its timeout: both ignored.
    batcher.receive(writer.write({ qs: [qb!], data: [ok], bytes: ok.length + 10 }, undefined));
    for (let t = 0; t < 200; t += 5) await clock.advance(5);
    expect((a.outcome!.err as RequestFailedError).reason).toBe("timeout");
    batcher.receive(writer.write({ qs: [qa!], data: [ok], bytes: ok.length + 10 }, undefined));
    expect(batcher.stats.unmatched).toBe(2);
    expect(a.calls + b.calls).toBe(2);
  });

  it("malformed reply entries are dropped and counted; the others settle; a bad reply fails its checks", () => {
    const { clock, batcher, published } = setup();
    const probes = [0, 1, 2].map(() => new Probe(clock));
    for (const p of probes) batcher.attach("node.a", new Uint8Array([0xc0]), 1000, p);
    batcher.flush();
    const [q1, q2, q3] = qsOf(published[0]!.data);
    const entries = [
      [q1, { v: 1, k: "ok", r: "one" }],
      [q2, packr.pack({ v: 1, k: "ok", r: "two" })], // version 1's bin: not a reply map
      ["x", { v: 1, k: "ok", r: 0 }], // q not a number
      [0, { v: 1, k: "ok", r: 0 }], // q below 1
      [q3], // not a pair
    ];
    batcher.receive(packr.pack({ v: 1, k: "replies", bv: BATCH_VERSION, r: entries }));
    expect(probes[0]!.outcome?.reply).toEqual({ v: 1, k: "ok", r: "one" });
    // The bin fails the reply checks: the router treats that as a malformed reply and retries.
    expect(probes[1]!.outcome?.reply).toEqual({ error: "not a v1 map" });
    expect(probes[2]!.outcome).toBeUndefined();
    expect(batcher.stats.malformed).toBe(3);
    // Another batch version, or not msgpack at all: dropped whole.
    batcher.receive(packr.pack({ v: 1, k: "replies", bv: 1, r: [[q3, { v: 1, k: "ok", r: 3 }]] }));
    batcher.receive(new Uint8Array([0xc1]));
    expect(batcher.stats.malformed).toBe(5);
    expect(probes[2]!.outcome).toBeUndefined();
  });

  it("cancelSubject fails the attempts to that destination only", () => {
    const { clock, batcher } = setup();
    const toA = new Probe(clock);
    const toB = new Probe(clock);
    batcher.attach("node.a", new Uint8Array([0xc0]), 1000, toA);
    batcher.attach("node.b", new Uint8Array([0xc0]), 1000, toB);
    batcher.cancelSubject("node.a", () => new Error("gone"));
    expect(toA.outcome?.err?.message).toBe("gone");
    expect(toB.outcome).toBeUndefined();
    expect(batcher.pending).toBe(1);
    batcher.close();
    expect((toB.outcome!.err as RequestFailedError).reason).toBe("disconnected");
  });
});

describe("envelope writer", () => {
  it("writes plain msgpack: q of every size, messages embedded as they were encoded", () => {
    const writer = new EnvelopeWriter();
    const qs = [0, 1, 127, 128, 65_535, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7];
    const data = qs.map((q) => packr.pack({ v: 1, k: "ok", r: { q, s: "é".repeat(q % 5) } }));
    const bytes = data.reduce((n, d) => n + d.length + 10, 0);
    const rs = `_INBOX.${"x".repeat(40)}`;
    const req = packr.unpack(writer.write({ qs, data, bytes }, rs)) as Record<string, unknown>;
    expect(req).toEqual({
      v: 1,
      k: "batch",
      bv: BATCH_VERSION,
      rs,
      m: qs.map((q) => [q, { v: 1, k: "ok", r: { q, s: "é".repeat(q % 5) } }]),
    });
    const rep = packr.unpack(writer.write({ qs, data, bytes }, undefined)) as Record<string, unknown>;
    expect(rep).toEqual({ v: 1, k: "replies", bv: BATCH_VERSION, r: (req.m as unknown[]).slice() });
    // An inbox of 300 characters (str16) and an empty one (tells only) frame correctly too.
    for (const s of ["y".repeat(300), ""])
      expect(
        (packr.unpack(writer.write({ qs: [1], data: [data[1]!], bytes: 64 }, s)) as { rs: string }).rs,
      ).toBe(s);
  });
});
