// The lease check over the simulated bus, for all pauses: nodes whose timers and deliveries are
// frozen for a random span and then released all at once (deliveries first, as libuv does
// after SIGSTOP), at every phase of the heartbeat, with duplicated, delayed and reordered
// messages. Checked at every step:
//  - a peer drops a node by expiry only when that node's lease is no longer valid (the
//    inequality L·(1+ρ) + P < T·(1−ρ), with P = 0 here);
//  - a node's lease is valid only within L of sending a heartbeat that has come back to it,
//    judged by an outside model of its heartbeats, so after a pause longer than L it is
//    invalid before the node handles anything that waited in its socket.
import {
  type Clock,
  type InboundMessage,
  leaseMs,
  membershipSubjects,
  ShardNode,
  silentLogger,
  type Transport,
  type TransportStatus,
  type TransportSubscription,
} from "@keyhold/core";
import { SimBus, seededRandom, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { Unpackr } from "msgpackr";
import { describe, expect, it } from "vitest";

const HB = 100;
const TTL = 400;
const L = leaseMs({ heartbeatMs: HB, ttlMs: TTL });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** One node's process: while paused, nothing of it runs; what arrives is held. */
class Gate {
  paused = false;
  readonly #held: (() => void)[] = [];
  readonly #timers: { fn: () => void; cancelled: boolean }[] = [];
  hold(fn: () => void): void {
    this.#held.push(fn);
  }
  holdTimer(t: { fn: () => void; cancelled: boolean }): void {
    this.#timers.push(t);
  }
  /** Resumes: the socket backlog first, then the timers that came due meanwhile. */
  release(before: () => void): void {
    this.paused = false;
    for (const fn of this.#held.splice(0)) {
      before();
      fn();
    }
    for (const t of this.#timers.splice(0)) if (!t.cancelled) t.fn();
  }
}

class GatedClock implements Clock {
  constructor(
    readonly base: VirtualClock,
    readonly gate: Gate,
  ) {}
  now(): number {
    return this.base.now();
  }
  monoNow(): number {
    return this.base.monoNow();
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const t = { fn, cancelled: false, inner: undefined as unknown };
    t.inner = this.base.setTimeout(() => {
      if (this.gate.paused) this.gate.holdTimer(t);
      else fn();
    }, ms);
    return t;
  }
  clearTimeout(handle: unknown): void {
    const t = handle as { cancelled: boolean; inner: unknown } | undefined;
    if (!t) return;
    t.cancelled = true;
    this.base.clearTimeout(t.inner);
  }
}

class GatedTransport implements Transport {
  constructor(
    readonly inner: Transport,
    readonly gate: Gate,
    readonly onDeliver: (subject: string, data: Uint8Array) => void,
    readonly onPublish: (subject: string, data: Uint8Array) => void,
  ) {}
  publish(subject: string, data: Uint8Array): void {
    this.onPublish(subject, data);
    this.inner.publish(subject, data);
  }
  subscribe(
    subject: string,
    handler: (msg: InboundMessage) => void,
    opts?: { queue?: string },
  ): TransportSubscription {
    return this.inner.subscribe(
      subject,
      (m) => {
        const run = () => {
          this.onDeliver(m.subject, m.data);
          handler(m);
        };
        if (this.gate.paused) this.gate.hold(run);
        else run();
      },
      opts,
    );
  }
  request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<Uint8Array> {
    const gate = this.gate;
    return this.inner.request(subject, data, opts).then(
      (v) => (gate.paused ? new Promise((res) => gate.hold(() => res(v))) : v),
      (err: unknown) =>
        gate.paused ? new Promise((_, rej) => gate.hold(() => rej(err))) : Promise.reject(err),
    );
  }
  onStatus(listener: (s: TransportStatus) => void): () => void {
    return this.inner.onStatus(listener);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

interface SimNode {
  readonly id: string;
  readonly gate: Gate;
  node: ShardNode | undefined;
  /** Monotonic send time of each own heartbeat, by its `at` (the outside model). */
  readonly sent: Map<number, number>;
  /** Newest send time among own heartbeats that came back. */
  echoedSent: number;
}

const pauseArb = fc.record({
  node: fc.integer({ min: 0, max: 2 }),
  // Any phase of the heartbeat: start anywhere in a 10-beat window.
  at: fc.integer({ min: 0, max: 10 * HB }),
  // From a blip to far past the take-over.
  span: fc.integer({ min: 1, max: 4 * TTL }),
});

describe("lease check (simulated bus, random pauses)", () => {
  it("no peer takes a node over while its lease is valid; no lease without a recent echoed heartbeat", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(pauseArb, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.integer({ min: 0, max: 30 }),
        fc.double({ min: 0, max: 0.3, noNaN: true }),
        async (pauses, seed, jitterMs, duplicate) => {
          const clock = new VirtualClock();
          const bus = new SimBus(clock, { latencyMs: 2, jitterMs, duplicate, random: seededRandom(seed) });
          const hb = membershipSubjects("p").heartbeat;
          const sims: SimNode[] = ["a", "b", "c"].map((id) => ({
            id,
            gate: new Gate(),
            node: undefined,
            sent: new Map(),
            echoedSent: Number.NEGATIVE_INFINITY,
          }));
          const violations: string[] = [];
          const check = (where: string) => {
            const now = clock.monoNow();
            for (const s of sims) {
              const n = s.node;
              if (!n || n.closed) continue;
              // Not valid without an echoed heartbeat sent less than L ago (outside model).
              if (n.leaseValid() && !(now < s.echoedSent + L))
                violations.push(
                  `${where}: ${s.id} valid ${now - s.echoedSent} ms after its last echoed send`,
                );
            }
          };
          const onDeliver = (self: SimNode) => (subject: string, data: Uint8Array) => {
            if (subject !== hb) return;
            const m = unpackr.unpack(data) as { id: string; at: number };
            if (m.id === self.id) {
              const sentAt = self.sent.get(m.at);
              if (sentAt !== undefined && sentAt > self.echoedSent) self.echoedSent = sentAt;
            }
          };
          const starting = sims.map((s) => {
            const ep = bus.connect(s.id);
            // Record each own heartbeat's send time as it is published (the outside model).
            const onPublish = (subject: string, data: Uint8Array) => {
              if (subject !== hb) return;
              const m = unpackr.unpack(data) as { id: string; at: number };
              if (m.id === s.id && !s.sent.has(m.at)) s.sent.set(m.at, clock.monoNow());
            };
            return ShardNode.start({
              transport: new GatedTransport(ep, s.gate, onDeliver(s), onPublish),
              clock: new GatedClock(clock, s.gate),
              cluster: "p",
              nodeId: s.id,
              heartbeatMs: HB,
              ttlMs: TTL,
              skewMs: 200,
              logger: silentLogger,
            });
          });
          let up = false;
          const all = Promise.all(starting).finally(() => {
            up = true;
          });
          while (!up) await clock.advance(1);
          const nodes = await all;
          nodes.forEach((n, i) => {
            sims[i]!.node = n;
          });
          // Drops: a peer that had a node in its view and no longer has it.
          let views = nodes.map((n) => new Set(n.members()));
          const step = async (ms: number) => {
            for (let t = 0; t < ms; t++) {
              await clock.advance(1);
              check("step");
              const next = nodes.map((n) => new Set(n.members()));
              next.forEach((view, y) => {
                for (const x of views[y]!) {
                  if (view.has(x) || x === sims[y]!.id) continue;
                  const xs = sims.find((s) => s.id === x)!;
                  if (xs.node!.leaseValid())
                    violations.push(
                      `${sims[y]!.id} dropped ${x} at ${clock.monoNow()} while its lease was valid`,
                    );
                }
              });
              views = next;
            }
          };
          await step(3 * TTL);
          const t0 = clock.monoNow();
          for (const pz of [...pauses].sort((a, b) => a.at - b.at)) {
            const wait = t0 + pz.at - clock.monoNow();
            if (wait > 0) await step(wait);
            const g = sims[pz.node]!.gate;
            if (g.paused) continue;
            g.paused = true;
            clock.setTimeout(() => g.release(() => check(`resume of ${sims[pz.node]!.id}`)), pz.span);
          }
          // Long enough for every pause to end and every node to rejoin.
          await step(4 * TTL + 12 * TTL);
          expect(violations.slice(0, 5)).toEqual([]);
          // Not vacuous: after the faults every node holds a lease again and all agree.
          for (const n of nodes) expect(n.leaseValid(), `${n.id} holds a lease again`).toBe(true);
          for (const n of nodes) expect(n.members()).toEqual(["a", "b", "c"]);
          let closed = false;
          const closing = Promise.all(nodes.map((n) => n.close())).finally(() => {
            closed = true;
          });
          while (!closed) await clock.advance(1);
          await closing;
        },
      ),
      { numRuns: 40 },
    );
  });
});
