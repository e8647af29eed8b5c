// The hold chain ("A fence too short for a take-over", docs/concepts/safety.md): a node whose
// lease lapsed, but whose every heartbeat acknowledgement came within H of the previous one's
// send, cannot have been dropped by any peer; its `unfenced` event says so (`leaseKept`). The
// pieces on their own (holdMs, OwnLease, LeaseWitness), then a node stalled on the simulated
// bus: a stall too short for a take-over, one long enough, and echo mode's silent-peer rule.
import {
  type Clock,
  type ClusterConfig,
  HASH_VERSION,
  type InboundMessage,
  LeaseTable,
  type ShardEvent,
  type ShardNode,
  silentLogger,
  type Transport,
} from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import { LeaseWitness } from "../src/fencing.js";
import type { HeartbeatStream } from "../src/heartbeat-stream.js";
import { Membership } from "../src/membership.js";
import { DEFAULT_HEARTBEAT_MS, DEFAULT_TTL_MS, leaseMs } from "../src/options.js";
import { holdMs, OwnLease } from "../src/own-lease.js";
import { startSimNode } from "./sim-node.js";

const HB = 100;
const TTL = 300;
const H = holdMs({ heartbeatMs: HB, ttlMs: TTL });

describe("holdMs", () => {
  it("is T·(1−ρ)/(1+ρ) less max(5 ms, a tenth of a beat), above the lease L", () => {
    expect(H).toBeCloseTo(289.4006, 3);
    const d = holdMs({ heartbeatMs: DEFAULT_HEARTBEAT_MS, ttlMs: DEFAULT_TTL_MS });
    expect(d).toBeCloseTo(5788.012, 2);
    expect(holdMs({ heartbeatMs: 10, ttlMs: 30 })).toBeCloseTo(30 * (0.999 / 1.001) - 5, 6);
    for (const [heartbeatMs, ttlMs] of [
      [HB, TTL],
      [200, 1000],
      [500, 1500],
      [DEFAULT_HEARTBEAT_MS, DEFAULT_TTL_MS],
    ] as const)
      expect(holdMs({ heartbeatMs, ttlMs })).toBeGreaterThan(leaseMs({ heartbeatMs, ttlMs }));
  });
});

describe("OwnLease hold chain", () => {
  /** A lease whose heartbeat `at` (== its send time) is acknowledged at `ack`. */
  function chain(steps: readonly (readonly [sent: number, ack: number])[]): boolean {
    const lease = new OwnLease(TTL - HB, H);
    lease.sent(0, 0);
    lease.echoed(0, true, 1);
    for (const [sent, ack] of steps) {
      lease.sent(sent, sent);
      lease.echoed(sent, ack < lease.until, ack);
    }
    return lease.renew();
  }

  it("holds while every acknowledgement came within H of the previous one's send", () => {
    expect(
      chain([
        [100, 101],
        [200, 201],
        [300, 301],
      ]),
    ).toBe(true);
    // A lapse (no ack for 280 ms, past L = 200) that is still inside H: kept.
    expect(
      chain([
        [100, 280],
        [200, 285],
      ]),
    ).toBe(true);
    // A stalled loop: the beat due at 100 went out at 270, its echo handled at 285 (< H).
    expect(chain([[270, 285]])).toBe(true);
  });

  it("breaks at an acknowledgement later than H after the previous one's send, until renewed", () => {
    expect(
      chain([
        [100, 101],
        [280, 390],
      ]),
    ).toBe(false); // 390 - 100 > H
    expect(chain([[250, 290]])).toBe(false); // 290 - 0 > H
    const lease = new OwnLease(TTL - HB, H);
    lease.sent(0, 0);
    lease.echoed(0, true, 1);
    lease.sent(400, 400);
    lease.echoed(400, false, 401);
    expect(lease.ackSentAt).toBe(400);
    expect(lease.renew()).toBe(false);
    lease.sent(500, 500);
    lease.echoed(500, true, 501);
    expect(lease.renew()).toBe(true); // a new chain from the renewal
  });

  it("never holds without a hold (the default)", () => {
    const lease = new OwnLease(TTL - HB);
    lease.sent(0, 0);
    lease.echoed(0, true, 0);
    lease.sent(100, 100);
    lease.echoed(100, true, 100);
    expect(lease.renew()).toBe(false);
  });
});

describe("LeaseWitness (echo mode)", () => {
  function table(): LeaseTable {
    const t = new LeaseTable(TTL, 200);
    t.observe("a", 0, 0, 0);
    t.observe("b", 0, 0, 0);
    return t;
  }

  it("is void once our heartbeat sent two beats after a silent peer's last one came back", () => {
    const t = table();
    const w = new LeaseWitness(["a", "b"], "a", t);
    w.watch(t, 250, 150, HB); // b not yet silent, our send not two beats past it
    expect(w.kept).toBe(true);
    w.watch(t, 301, 150, HB); // silent, but our newest acknowledged send is only 150
    expect(w.kept).toBe(true);
    w.watch(t, 310, 201, HB);
    expect(w.kept).toBe(false);
    t.observe("b", 320, 320, 320); // heard again: too late, the proof stays void
    w.watch(t, 330, 320, HB);
    expect(w.kept).toBe(false);
  });

  it("holds when the silent peer is heard again first (only we had not heard it)", () => {
    const t = table();
    const w = new LeaseWitness(["a", "b"], "a", t);
    w.watch(t, 301, 150, HB);
    t.observe("b", 305, 305, 305);
    w.watch(t, 310, 290, HB);
    expect(w.kept).toBe(true);
  });
});

/** A node's clock and transport that stall like a frozen event loop (nothing runs meanwhile). */
class Stall {
  readonly clock: Clock;
  readonly transport: Transport;
  #stalled = false;
  readonly #queued: (() => void)[] = [];

  constructor(bus: SimBus, name: string) {
    const inner = bus.connect(name);
    const base = bus.clock;
    const defer = (fn: () => void) => () => (this.#stalled ? this.#queued.push(fn) : fn());
    this.clock = {
      now: () => base.now(),
      monoNow: () => base.monoNow(),
      setTimeout: (fn, ms) => base.setTimeout(defer(fn), ms),
      clearTimeout: (h) => base.clearTimeout(h),
    };
    const transport: Transport = {
      publish: (subject, data) => inner.publish(subject, data),
      subscribe: (subject, handler, opts) =>
        inner.subscribe(subject, (m: InboundMessage) => defer(() => handler(m))(), opts),
      request: (subject, data, opts) => inner.request(subject, data, opts),
      inbox: () => inner.inbox(),
      maxPayload: () => inner.maxPayload(),
      onStatus: (l) => inner.onStatus(l),
      flush: () => inner.flush(),
      close: () => inner.close(),
    };
    this.transport = transport;
  }

  /** Stalls for `ms` virtual ms, then runs what was due in the order it came. */
  async for(bus: SimBus, ms: number): Promise<void> {
    this.#stalled = true;
    await bus.clock.advance(ms);
    this.#stalled = false;
    for (const f of this.#queued.splice(0)) f();
  }
}

async function start(
  bus: SimBus,
  id: string,
  stall?: Stall,
): Promise<{ node: ShardNode; events: ShardEvent[] }> {
  const { node, events } = await startSimNode(bus, id, {
    ...(stall ? { transport: stall.transport, clock: stall.clock } : {}),
    cluster: "h",
    heartbeatMs: HB,
    ttlMs: TTL,
  });
  return { node, events };
}

/** a (stallable), b, c on one bus, settled; a's stall begins right after its heartbeat's echo. */
async function three() {
  const bus = new SimBus(new VirtualClock());
  const stall = new Stall(bus, "a");
  const a = await start(bus, "a", stall);
  const b = await start(bus, "b");
  const c = await start(bus, "c");
  await bus.clock.advance(HB * 5);
  // Just after a beat of a was sent and echoed (1 ms latency): the lease then runs from it.
  let sends = 0;
  const off = bus.connect("spy").subscribe("keyhold.h.hb", () => sends++);
  for (let i = 0; i < HB * 2 && sends === 0; i++) await bus.clock.advance(1);
  off.unsubscribe();
  return { bus, stall, a, b, c };
}

const unfenced = (events: readonly ShardEvent[]) =>
  events.filter((e): e is Extract<ShardEvent, { type: "unfenced" }> => e.type === "unfenced");

describe("a stalled node's unfence", () => {
  it("a stall past the lease but within H: fenced, and unfenced with leaseKept", async () => {
    const { bus, stall, a, b } = await three();
    await stall.for(bus, 250);
    await bus.clock.advance(HB * 4);
    expect(a.events.some((e) => e.type === "fenced")).toBe(true);
    expect(a.node.fenced).toBe(false);
    expect(unfenced(a.events).map((e) => e.leaseKept)).toEqual([true]);
    expect(b.node.members()).toEqual(["a", "b", "c"]);
  });

  it("a stall past H: unfenced without leaseKept", async () => {
    const { bus, stall, a } = await three();
    await stall.for(bus, 295);
    await bus.clock.advance(HB * 5);
    expect(unfenced(a.events).map((e) => e.leaseKept)).toEqual([false]);
  });

  it("echo mode: peers of the view that fall silent during the fence void it", async () => {
    const { bus, stall, a } = await three();
    // A split with the stall: a's echoes come back, but nobody hears a (or answers its syncs),
    // so its rejoin waits one TTL and b and c drop it. Its acknowledgements alone would hold.
    bus.partition(["a"], ["b", "c"]);
    await stall.for(bus, 250);
    await bus.clock.advance(TTL * 3);
    expect(unfenced(a.events).map((e) => e.leaseKept)).toEqual([false]);
  });

  it("echo mode: peers heard again before their silence is proven keep it", async () => {
    const { bus, stall, a } = await three();
    // A stall longer than the TTL would be past H; here the peers are unheard only while a is
    // stalled, and heard at once after it (its queued input first).
    await stall.for(bus, 280);
    await bus.clock.advance(HB * 4);
    expect(unfenced(a.events).map((e) => e.leaseKept)).toEqual([true]);
  });
});

/** A heartbeat stream that stores and acknowledges after 2 + 2 ms on the node's own clock. */
function stream(
  store: Map<string, Uint8Array>,
  clock: Clock,
  publish: (s: string, d: Uint8Array) => void,
): HeartbeatStream {
  const delay = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
  return {
    publish: async (subject, data) => {
      publish(subject, data);
      await delay(2);
      store.set(subject, data);
      await delay(2);
    },
    last: async (subject) => {
      await delay(2);
      return store.get(subject);
    },
  };
}

/** a (stallable), b, c as jetstream-mode Memberships over one simulated stream. */
async function jetstream() {
  const bus = new SimBus(new VirtualClock());
  const store = new Map<string, Uint8Array>();
  const config: ClusterConfig = {
    ringSize: 16,
    heartbeatMs: HB,
    ttlMs: TTL,
    skewMs: 200,
    hash: HASH_VERSION,
    leases: "jetstream",
  };
  const stall = new Stall(bus, "a");
  const ms: Membership[] = [];
  for (const id of ["a", "b", "c"]) {
    const transport = id === "a" ? stall.transport : bus.connect(id);
    const clock = id === "a" ? stall.clock : bus.clock;
    const m = new Membership({
      transport,
      cluster: "hj",
      id,
      config,
      observer: false,
      clock,
      logger: silentLogger,
      stream: stream(store, clock, (sub, d) => transport.publish(sub, d)),
      onChange: () => {},
    });
    let done = false;
    void m.start(5000).finally(() => {
      done = true;
    });
    while (!done) await bus.clock.advance(1);
    ms.push(m);
  }
  await bus.clock.advance(5 * HB);
  // Just after a beat of a was stored and acknowledged.
  const at = bus.clock.now();
  while (ms[0]!.leaseRemainingMs() < TTL - HB - 2 && bus.clock.now() - at < 2 * HB)
    await bus.clock.advance(1);
  return { bus, stall, a: ms[0]!, b: ms[1]!, c: ms[2]! };
}

describe("jetstream mode: the acknowledgement is the stream's", () => {
  it("a stall within H: leaseKept", async () => {
    const { bus, stall, a, b } = await jetstream();
    await stall.for(bus, 250);
    expect(a.fenced).toBe(true);
    await bus.clock.advance(HB * 4);
    expect(a.fenced).toBe(false);
    expect(a.leaseKept).toBe(true);
    expect(b.members).toEqual(["a", "b", "c"]);
  });

  it("a stall past H: not kept", async () => {
    const { bus, stall, a } = await jetstream();
    await stall.for(bus, 295);
    await bus.clock.advance(HB * 5);
    expect(a.fenced).toBe(false);
    expect(a.leaseKept).toBe(false);
  });

  it("peers that cannot hear a: kept, rightly, since their leader reads see a's stored heartbeats", async () => {
    const { bus, stall, a, b, c } = await jetstream();
    // a is cut off from its peers (not from the stream) as its stall begins: no silent-peer rule
    // in this mode, and no peer drops a, however long the cut lasts.
    bus.partition(["a"], ["b", "c"]);
    await stall.for(bus, 250);
    let dropped = false;
    for (let t = 0; t < TTL * 4; t++) {
      await bus.clock.advance(1);
      if (!b.members.includes("a") || !c.members.includes("a")) dropped = true;
    }
    expect(a.fenced).toBe(false);
    expect(a.leaseKept).toBe(true);
    expect(dropped).toBe(false);
  });
});
