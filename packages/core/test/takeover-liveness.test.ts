// Liveness of the jetstream lease mode (issue 9, "run 7"): a member holds a silent peer whose
// lease expired until the stream leader confirms the silence (takeover.ts holdUnconfirmed), and
// its ring names that peer as long as it does. So every hold must end: once reads are answered,
// a held peer is either confirmed gone or back, within a bound, whatever split, stream outage
// or crash came before. Simulated bus, virtual clock and a simulated heartbeat stream.
import { type ClusterConfig, HASH_VERSION, type Logger, Ring, silentLogger } from "@keyhold/core";
import { SimBus, type SimEndpoint, seededRandom, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { HeartbeatStream } from "../src/heartbeat-stream.js";
import { Membership } from "../src/membership.js";
import { memberHeartbeatSubject } from "../src/wire.js";

const HB = 100;
const TTL = 400;
/** How long a leader read waits for its answer (takeover.ts: max(1000 ms, heartbeatMs)). */
const READ_TIMEOUT = Math.max(1000, HB);
/**
 * Once the bus and the stream work again, the longest a dead peer may stay in a live member's
 * view, or a live member stay fenced (docs/concepts/safety.md, "How long a silent peer is
 * held"): a read sent while the stream could not answer fails only at its timeout, a heartbeat
 * heard but never stored costs one T more before the read that confirms it, a rejoin at most
 * one T, and beats and read round trips round the rest.
 */
const BOUND = READ_TIMEOUT + 2 * TTL + 4 * HB;

/** A stream whose leader some endpoints reach, and whose reads may fail on their own. */
class SimStream {
  readonly store = new Map<string, Uint8Array>();
  reaches: (name: string) => boolean = () => true;
  readsFail = false;
  constructor(readonly clock: VirtualClock) {}

  for(ep: SimEndpoint): HeartbeatStream {
    const delay = (ms: number) => new Promise<void>((r) => this.clock.setTimeout(r, ms));
    const fail = (ms: number) =>
      new Promise<never>((_, rej) => this.clock.setTimeout(() => rej(new Error("timeout")), ms));
    const ok = () => ep.connected && this.reaches(ep.name);
    return {
      publish: async (subject, data, timeoutMs) => {
        if (!ep.connected) return fail(timeoutMs);
        ep.publish(subject, data);
        await delay(2);
        if (!ok()) return fail(timeoutMs);
        this.store.set(subject, data);
        await delay(2);
        if (!ok()) return fail(timeoutMs);
      },
      last: async (subject, timeoutMs) => {
        await delay(2);
        if (!ok() || this.readsFail) return fail(timeoutMs);
        const data = this.store.get(subject);
        await delay(2);
        return data;
      },
    };
  }
}

interface Member {
  readonly id: string;
  readonly ep: SimEndpoint;
  readonly m: Membership;
}

async function cluster(ids: readonly string[], logger: Logger = silentLogger, seed = 1) {
  const clock = new VirtualClock();
  const bus = new SimBus(clock, { jitterMs: 3, random: seededRandom(seed) });
  const stream = new SimStream(clock);
  const config: ClusterConfig = {
    ringSize: 32,
    heartbeatMs: HB,
    ttlMs: TTL,
    skewMs: 200,
    hash: HASH_VERSION,
    leases: "jetstream",
  };
  const members: Member[] = [];
  for (const id of ids) {
    const ep = bus.connect(id);
    const m = new Membership({
      transport: ep,
      cluster: "lv",
      id,
      config,
      observer: false,
      clock,
      logger,
      stream: stream.for(ep),
      onChange: () => {},
    });
    let done = false;
    void m.start(5000).finally(() => {
      done = true;
    });
    while (!done) await clock.advance(1);
    members.push({ id, ep, m });
  }
  await clock.advance(5 * HB);
  return { clock, bus, stream, members };
}

/** What is wrong now: a live member fenced, or whose view is not exactly the live members. */
function wrong(members: readonly Member[]): string[] {
  const live = members.filter((x) => x.ep.connected);
  const ids = live.map((x) => x.id).sort();
  const out: string[] = [];
  for (const x of live) {
    if (x.m.fenced) out.push(`${x.id} fenced`);
    else if (x.m.members.join() !== ids.join()) out.push(`${x.id} sees ${x.m.members.join()}`);
  }
  return out;
}

/** Advances until nothing is wrong; how long that took, or Infinity past `limit`. */
async function settle(clock: VirtualClock, members: readonly Member[], limit: number): Promise<number> {
  for (let t = 0; t <= limit; t += 5) {
    if (wrong(members).length === 0) return t;
    await clock.advance(5);
  }
  return Number.POSITIVE_INFINITY;
}

const crash = (x: Member) => x.ep.disconnect();

/**
 * Advances `ms`, looking every 5 virtual ms for a partition owned by two members that both hold
 * a valid lease (a crashed member counts: cut off, it could still act on what it has). Only
 * while a fault lasts, each from settled views: at a heal, as at any join, a member that comes
 * back owns its partitions in its own view before the others hear it, which core allows (the
 * hand-off waits for the holder); the split rule is that nobody takes over a holder's lease.
 */
async function watched(clock: VirtualClock, members: readonly Member[], ms: number, overlaps: Set<number>) {
  for (let t = 0; t < ms; t += 5) {
    await clock.advance(Math.min(5, ms - t));
    const holders = new Map<number, number>();
    for (const x of members) {
      if (x.m.fenced || x.m.leaseRemainingMs() <= 0) continue;
      for (const p of new Ring(x.m.members, 32).partitionsOf(x.id)) holders.set(p, (holders.get(p) ?? 0) + 1);
    }
    for (const [p, n] of holders) if (n > 1) overlaps.add(p);
  }
}

describe("jetstream leases: every hold on a silent peer ends (simulated)", () => {
  it("a peer that dies on the minority side of a split is out of every view within the bound after the heal", async () => {
    const { clock, bus, stream, members } = await cluster(["a", "b", "c", "d", "e"]);
    bus.partition(["a", "b", "c"], ["d", "e"]);
    stream.reaches = (n) => n !== "d" && n !== "e";
    await clock.advance(2 * TTL);
    crash(members[4]!);
    await clock.advance(3 * TTL);
    bus.heal();
    stream.reaches = () => true;
    const took = await settle(clock, members, 4 * BOUND);
    expect(wrong(members), `after ${took} ms`).toEqual([]);
    expect(took).toBeLessThanOrEqual(BOUND);
    for (const x of members.slice(0, 4)) expect([...x.m.members]).toEqual(["a", "b", "c", "d"]);
  });

  it("reads that keep failing keep a dead peer held (and say so); the first answered read drops it", async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (m: string) => warnings.push(m) };
    const { clock, stream, members } = await cluster(["a", "b", "c"], logger);
    stream.readsFail = true;
    crash(members[2]!);
    // A read times out after max(1000 ms, heartbeatMs): three of them in a row are reported.
    await clock.advance(TTL + 4 * 1000);
    // Unconfirmed: still a member (its keys wait; nobody takes them over), and reported.
    for (const x of members.slice(0, 2)) expect([...x.m.members]).toEqual(["a", "b", "c"]);
    expect(warnings.some((w) => /peer c stays a member/.test(w) && /STREAM\.MSG\.GET/.test(w))).toBe(true);
    stream.readsFail = false;
    const took = await settle(clock, members, 4 * BOUND);
    expect(took).toBeLessThanOrEqual(2 * HB + 20);
  });

  it("junk stored over a dead peer's heartbeat holds it one T more, not for good", async () => {
    const { clock, stream, members } = await cluster(["a", "b", "c"]);
    crash(members[2]!);
    stream.store.set(memberHeartbeatSubject("lv", "c"), new Uint8Array([1, 2, 3]));
    await clock.advance(TTL + 3 * HB);
    // The first read found junk: taken as a heartbeat heard then.
    expect([...members[0]!.m.members]).toEqual(["a", "b", "c"]);
    const took = await settle(clock, members, 4 * BOUND);
    expect(took).toBeLessThanOrEqual(BOUND);
    expect(members[0]!.m.stats.malformed).toBeGreaterThan(0);
  });

  // Found by the property below (seed 2479057040, 200 runs): the side without the stream fences
  // and, fenced, used to sweep the peer it could not hear; rejoining through one another after
  // the heal, its members took over that peer's partitions at once, while the peer (here cut off
  // right at the heal) still held the lease the stream had renewed on its side.
  it("members that fenced for want of the stream do not take over a peer that kept its lease through the stream", async () => {
    const { clock, bus, stream, members } = await cluster(["a", "b", "c", "d", "e"]);
    const a = members[0]!;
    const overlaps = new Set<number>();
    bus.partition(["b", "c", "d", "e"], ["a"]);
    stream.reaches = (n) => n === "a";
    // a's reads fail too: it keeps the others in its view (it may not drop them unconfirmed), so
    // it owns only its own partitions, and any overlap below is a take-over of a's lease.
    stream.readsFail = true;
    await watched(clock, members, 3 * TTL, overlaps);
    expect([...a.m.members]).toEqual(["a", "b", "c", "d", "e"]);
    for (const x of members.slice(1)) expect(x.m.fenced, x.id).toBe(true);
    expect(a.m.leaseRemainingMs()).toBeGreaterThan(0);
    // a is lost at the heal: no heartbeat of it will be heard, but its lease runs on for up to L.
    crash(a);
    bus.heal();
    stream.reaches = () => true;
    stream.readsFail = false;
    await watched(clock, members, 3 * TTL, overlaps);
    expect([...overlaps]).toEqual([]);
    const took = await settle(clock, members, 4 * BOUND);
    expect(took).toBeLessThanOrEqual(BOUND);
    for (const x of members.slice(1)) expect([...x.m.members], x.id).toEqual(["b", "c", "d", "e"]);
  });

  // Random splits, stream outages (the leader away, or only its reads failing), crashes and junk
  // over a crashed member's stored heartbeat; then everything works again and every surviving
  // view must be exact within the bound. Throughout, no partition has two owners with a lease.
  const faultArb = fc.record({
    minority: fc.subarray(["a", "b", "c", "d", "e"], { minLength: 1, maxLength: 2 }),
    leaderWithMinority: fc.boolean(),
    readsFail: fc.boolean(),
    crash: fc.option(fc.constantFrom(0, 1, 2, 3, 4), { nil: undefined }),
    crashAfter: fc.integer({ min: 0, max: 6 * TTL }),
    lasts: fc.integer({ min: 1, max: 8 * TTL }),
    healed: fc.integer({ min: 0, max: 3 * TTL }),
    junk: fc.boolean(),
  });
  it("property: after any sequence of faults, once NATS and the stream work, views are exact within the bound", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(faultArb, { minLength: 1, maxLength: 4 }),
        fc.integer(),
        async (faults, seed) => {
          const { clock, bus, stream, members } = await cluster(
            ["a", "b", "c", "d", "e"],
            silentLogger,
            seed,
          );
          let crashed = 0;
          const overlaps = new Set<number>();
          for (const f of faults) {
            await settle(clock, members, 4 * BOUND);
            const min = new Set(f.minority);
            bus.partition(
              members.filter((x) => !min.has(x.id)).map((x) => x.id),
              [...min],
            );
            stream.reaches = (n) => (f.leaderWithMinority ? min.has(n) : !min.has(n));
            stream.readsFail = f.readsFail;
            const victim = f.crash === undefined ? undefined : members[f.crash]!;
            const crashAt = Math.min(f.crashAfter, f.lasts);
            await watched(clock, members, crashAt, overlaps);
            // At most two crashes, so that three members stay (any split then has a majority side).
            if (victim?.ep.connected && crashed < 2) {
              crash(victim);
              crashed++;
              if (f.junk) stream.store.set(memberHeartbeatSubject("lv", victim.id), new Uint8Array([9, 9]));
            }
            await watched(clock, members, f.lasts - crashAt, overlaps);
            bus.heal();
            stream.reaches = () => true;
            stream.readsFail = false;
            await clock.advance(f.healed);
          }
          const took = await settle(clock, members, 4 * BOUND);
          expect(wrong(members), `still wrong ${4 * BOUND} ms after the last heal`).toEqual([]);
          expect(took).toBeLessThanOrEqual(BOUND);
          expect([...overlaps], "partitions with two owners holding a lease").toEqual([]);
          for (const x of members) if (x.ep.connected) await x.m.close();
        },
      ),
      {
        numRuns: Number(process.env.KH_PROPERTY_RUNS ?? 40),
        examples: [
          // Random search (seed 2845), before the bound counted the read timeout: reads failing
          // everywhere while a crashed member was held; the read in flight at the heal answered
          // only at its timeout, so the views were exact 1435 ms after the heal.
          [
            [
              {
                minority: ["c"],
                leaderWithMinority: false,
                readsFail: false,
                crash: 0,
                crashAfter: 60,
                lasts: 60,
                healed: 164,
                junk: false,
              },
              {
                minority: ["e"],
                leaderWithMinority: false,
                readsFail: true,
                crash: undefined,
                crashAfter: 0,
                lasts: 240,
                healed: 0,
                junk: false,
              },
            ],
            -966111556,
          ],
        ],
      },
    );
  });
});
