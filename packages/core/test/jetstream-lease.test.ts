// The jetstream lease mode over the simulated bus with a virtual clock and a simulated heartbeat
// stream: a split NATS cluster (the bus partitioned, the stream's quorum on one side) and a
// one-way break (the stream still hears the cut-off side). At every virtual millisecond no
// partition may have two members that both hold a valid lease and own it. The same split in echo
// mode does produce such overlaps, which shows the check can fail.
import { type Clock, type ClusterConfig, HASH_VERSION, Ring, silentLogger } from "@keyhold/core";
import { SimBus, type SimEndpoint, VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import type { HeartbeatStream } from "../src/heartbeat-stream.js";
import { Membership } from "../src/membership.js";

const HB = 100;
const TTL = 400;
const RING = 32;

/** A stream whose leader is reachable from the endpoints `reaches` says yes to. */
class SimStream {
  readonly store = new Map<string, Uint8Array>();
  reaches: (name: string) => boolean = () => true;
  constructor(readonly clock: VirtualClock) {}

  for(ep: SimEndpoint): HeartbeatStream {
    const delay = (ms: number) => new Promise<void>((r) => this.clock.setTimeout(r, ms));
    const reject = (ms: number) =>
      new Promise<never>((_, rej) => this.clock.setTimeout(() => rej(new Error("timeout")), ms));
    return {
      publish: async (subject, data, timeoutMs) => {
        ep.publish(subject, data); // a JetStream publish is a core publish too
        await delay(2);
        if (!this.reaches(ep.name)) return reject(timeoutMs);
        this.store.set(subject, data);
        await delay(2);
        if (!this.reaches(ep.name)) return reject(timeoutMs);
      },
      last: async (subject, timeoutMs) => {
        await delay(2);
        if (!this.reaches(ep.name)) return reject(timeoutMs);
        const data = this.store.get(subject);
        await delay(2);
        return data;
      },
    };
  }
}

interface Member {
  readonly id: string;
  readonly m: Membership;
  owned: Set<number>;
}

/** Per-node wall-clock offsets (ms), applied to `now()` only: a clock stepped while running. */
const offsets = new Map<string, number>();

function nodeClock(clock: VirtualClock, id: string): Clock {
  return {
    now: () => clock.now() + (offsets.get(id) ?? 0),
    monoNow: () => clock.monoNow(),
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
    clearTimeout: (h) => clock.clearTimeout(h),
  };
}

async function cluster(mode: "jetstream" | "echo", ids: readonly string[]) {
  offsets.clear();
  const clock = new VirtualClock();
  const bus = new SimBus(clock);
  const stream = new SimStream(clock);
  const config: ClusterConfig = {
    ringSize: RING,
    heartbeatMs: HB,
    ttlMs: TTL,
    skewMs: 200,
    hash: HASH_VERSION,
    leases: mode,
  };
  const members: Member[] = [];
  for (const id of ids) {
    const ep = bus.connect(id);
    const member: Member = { id, m: undefined as unknown as Membership, owned: new Set() };
    const m = new Membership({
      transport: ep,
      cluster: "js",
      id,
      config,
      observer: false,
      clock: nodeClock(clock, id),
      logger: silentLogger,
      stream: mode === "jetstream" ? stream.for(ep) : undefined,
      onChange: (list, fenced) => {
        member.owned = fenced ? new Set() : new Set(new Ring(list, RING).partitionsOf(id));
      },
    });
    (member as { m: Membership }).m = m;
    let done = false;
    void m.start(5000).finally(() => {
      done = true;
    });
    while (!done) await clock.advance(1);
    members.push(member);
  }
  await clock.advance(5 * HB);
  return { clock, bus, stream, members };
}

/** Advances `ms` one virtual ms at a time; returns the partitions ever owned by two valid leases. */
async function watch(clock: VirtualClock, members: readonly Member[], ms: number): Promise<Set<number>> {
  const overlapping = new Set<number>();
  for (let t = 0; t < ms; t++) {
    await clock.advance(1);
    const holders = new Map<number, number>();
    for (const x of members) {
      if (x.m.leaseRemainingMs() <= 0) continue;
      for (const p of x.owned) holders.set(p, (holders.get(p) ?? 0) + 1);
    }
    for (const [p, n] of holders) if (n > 1) overlapping.add(p);
  }
  return overlapping;
}

const IDS = ["a", "b", "c", "d", "e"];
const MINORITY = new Set(["d", "e"]);

describe("leases acknowledged by the heartbeat stream (simulated)", () => {
  it("a NATS split: the minority fences, the majority takes over after a leader read, no overlap", async () => {
    const { clock, bus, stream, members } = await cluster("jetstream", IDS);
    expect(members.every((x) => x.m.leaseRemainingMs() > 0)).toBe(true);
    bus.partition(["a", "b", "c"], ["d", "e"]);
    stream.reaches = (n) => !MINORITY.has(n);
    const overlap = await watch(clock, members, 6 * TTL);
    expect([...overlap]).toEqual([]);
    for (const x of members) {
      if (MINORITY.has(x.id)) expect(x.m.fenced).toBe(true);
      else expect([...x.m.members]).toEqual(["a", "b", "c"]);
    }
    // The majority owns the whole ring again.
    const owned = new Set(members.filter((x) => !MINORITY.has(x.id)).flatMap((x) => [...x.owned]));
    expect(owned.size).toBe(RING);
    expect(members[0]!.m.leaseStats.takeoverReads).toBeGreaterThan(0);
    bus.heal();
    stream.reaches = () => true;
    expect([...(await watch(clock, members, 6 * TTL))]).toEqual([]);
    for (const x of members) expect([...x.m.members]).toEqual(IDS);
  });

  it("a one-way break: the stream hears the cut-off side, so the others never take over", async () => {
    const { clock, bus, members } = await cluster("jetstream", IDS);
    // d and e cannot reach a, b, c over core NATS, but their heartbeats still reach the stream.
    bus.partition(["a", "b", "c"], ["d", "e"]);
    const overlap = await watch(clock, members, 6 * TTL);
    expect([...overlap]).toEqual([]);
    const a = members[0]!.m;
    expect(a.leaseStats.takeoverRefused).toBeGreaterThan(0);
    // d and e still hold their leases (the stream acknowledges them) and a still counts them.
    expect(members[3]!.m.leaseRemainingMs()).toBeGreaterThan(0);
    expect([...a.members]).toEqual(IDS);
  });

  it("a stream without a leader: every lease lapses, nobody takes anything over", async () => {
    const { clock, stream, members } = await cluster("jetstream", IDS);
    const before = members.map((x) => [...x.m.members]);
    stream.reaches = () => false;
    expect([...(await watch(clock, members, 4 * TTL))]).toEqual([]);
    for (const x of members) expect(x.m.fenced).toBe(true);
    stream.reaches = () => true;
    await watch(clock, members, 4 * TTL);
    expect(members.map((x) => [...x.m.members])).toEqual(before);
  });

  it("a wall clock stepped back past ttl: echo mode overlaps, jetstream mode does not", async () => {
    for (const mode of ["echo", "jetstream"] as const) {
      const { clock, members } = await cluster(mode, IDS);
      // d's clock jumps back 3 x ttl: its peers reject its heartbeats as expired on arrival,
      // while d still accepts its own echoes (and, in jetstream mode, gets acknowledgements).
      offsets.set("d", -3 * TTL);
      const overlap = await watch(clock, members, 6 * TTL);
      if (mode === "echo") expect(overlap.size, "echo mode: two owners").toBeGreaterThan(0);
      else {
        expect([...overlap]).toEqual([]);
        expect(members[0]!.m.leaseStats.takeoverRefused).toBeGreaterThan(0);
      }
    }
  });

  it("echo mode under the same split overlaps (the property above can fail)", async () => {
    const { clock, bus, members } = await cluster("echo", IDS);
    bus.partition(["a", "b", "c"], ["d", "e"]);
    // Each side still hears its own echoes: nobody fences, both sides own everything.
    const overlap = await watch(clock, members, 4 * TTL);
    expect(overlap.size).toBeGreaterThan(0);
  });
});
