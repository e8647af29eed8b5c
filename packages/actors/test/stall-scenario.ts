// The stall-and-cut scenario of the short-fence property and of refused-write.test.ts: random
// nodes stall (as SIGSTOP stops a process) around the lease, are cut off from the bus, and get
// stray pulls, while a client adds ops to a replicated log.
import { Entity, type Sharding } from "@keyhold/actors";
import { SimBus, seededRandom, VirtualClock } from "@keyhold/testing";
import { expect } from "vitest";
import { encode, nodeSubject } from "../src/wire.js";
import { Pausable } from "./pause.js";
import { drive, HB, startOn, TTL } from "./support.js";

export class Log extends Entity<{ ops: string[] }> {
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

export type Op =
  | { op: "asks"; n: number; from: number }
  | { op: "stall"; i: number; ms: number; lag: number; cut: number | null }
  | { op: "cut"; i: number; ms: number }
  | { op: "pull"; i: number; p: number }
  | { op: "wait"; ms: number };

/**
 * Three nodes serving Log on a simulated bus that delays, reorders and duplicates, run through
 * `ops`; then every cut heals and the waits end. Asserts that every acknowledgement was made
 * under a lease and that no acknowledged op is lost. Returns how many re-acquisitions kept their
 * pre-fence records on a fence's proof (stats().handoff.preFenceLeaseKept).
 */
export async function scenario(
  ops: readonly Op[],
  seed: number,
  resume: "io-first" | "timers-first",
  // The replays of recorded runs pin 0 (join at once, the default they were found under): the
  // steps' timing is part of a run.
  joinStepPartitions: number | "auto" = "auto",
): Promise<number> {
  const bus = new SimBus(new VirtualClock(), { jitterMs: 4, duplicate: 0.1, random: seededRandom(seed) });
  const ids = ["n0", "n1", "n2"];
  const pausable = ids.map((id) => new Pausable(bus, id, { resume }));
  const owned: { key: string; node: string; leaseLeft: number }[] = [];
  const nodes: Sharding[] = [];
  for (const [i, p] of pausable.entries())
    nodes.push(
      await startOn(bus, ids[i]!, {
        cluster: "sp",
        joinStepPartitions,
        transport: p.transport,
        clock: p.clock,
        entities: [Log],
        ...(process.env.SF_LOG
          ? {
              logger: {
                debug: (m: string, ...a: unknown[]) =>
                  console.log(bus.clock.now(), ids[i], "D", m, JSON.stringify(a)),
                info: (m: string, ...a: unknown[]) =>
                  console.log(bus.clock.now(), ids[i], "I", m, JSON.stringify(a)),
                warn: (m: string, ...a: unknown[]) =>
                  console.log(bus.clock.now(), ids[i], "W", m, JSON.stringify(a)),
                error: (m: string, ...a: unknown[]) =>
                  console.log(bus.clock.now(), ids[i], "E", m, JSON.stringify(a)),
              },
            }
          : {}),
        onAck: (a) => {
          if (process.env.SF_LOG) console.log(bus.clock.now(), ids[i], "onAck", JSON.stringify(a));
          owned.push({
            key: a.key,
            node: ids[i]!,
            leaseLeft: nodes[i]?.node.leaseRemainingMs() ?? 0,
          });
        },
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
              (r) => {
                if (process.env.SF_LOG) console.log(bus.clock.now(), "ACK", key, op, JSON.stringify(r));
                acked.push({ key, op });
              },
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
      if (process.env.SF_LOG) console.log(bus.clock.now(), "PAUSE", ids[o.i], o.ms, "cut", o.cut);
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
  const kept = nodes.reduce((n, s) => n + s.stats().handoff.preFenceLeaseKept, 0);
  if (process.env.SF_DEBUG)
    console.log(
      "kept",
      kept,
      nodes.map((n) => JSON.stringify(n.stats().handoff)),
    );
  for (const n of [...nodes, client])
    await drive(
      bus,
      n.close().catch(() => {}),
    );
  return kept;
}
