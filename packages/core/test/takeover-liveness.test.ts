// Liveness of the jetstream lease mode (issue 9, "run 7"): a member holds a silent peer whose
// lease expired until the stream leader confirms the silence (takeover.ts holdUnconfirmed), and
// its ring names that peer as long as it does. So every hold must end: once reads are answered,
// a held peer is either confirmed gone or back, within a bound, whatever split, stream outage
// or crash came before. Simulated bus, virtual clock and a simulated heartbeat stream.
import { type ClusterConfig, HASH_VERSION, type Logger, silentLogger } from "@keyhold/core";
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

  // Random splits, stream outages (the leader away, or only its reads failing) and crashes; then
  // everything works again and every surviving view must be exact within the bound.
  const faultArb = fc.record({
    minority: fc.subarray(["a", "b", "c", "d", "e"], { minLength: 1, maxLength: 2 }),
    leaderWithMinority: fc.boolean(),
    readsFail: fc.boolean(),
    crash: fc.option(fc.constantFrom(0, 1, 2, 3, 4), { nil: undefined }),
    crashAfter: fc.integer({ min: 0, max: 6 * TTL }),
    lasts: fc.integer({ min: 1, max: 8 * TTL }),
    healed: fc.integer({ min: 0, max: 3 * TTL }),
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
          for (const f of faults) {
            const min = new Set(f.minority);
            bus.partition(
              members.filter((x) => !min.has(x.id)).map((x) => x.id),
              [...min],
            );
            stream.reaches = (n) => (f.leaderWithMinority ? min.has(n) : !min.has(n));
            stream.readsFail = f.readsFail;
            const victim = f.crash === undefined ? undefined : members[f.crash]!;
            const crashAt = Math.min(f.crashAfter, f.lasts);
            await clock.advance(crashAt);
            // At most two crashes, so that three members stay (any split then has a majority side).
            if (victim?.ep.connected && crashed < 2) {
              crash(victim);
              crashed++;
            }
            await clock.advance(f.lasts - crashAt);
            bus.heal();
            stream.reaches = () => true;
            stream.readsFail = false;
            await clock.advance(f.healed);
          }
          const took = await settle(clock, members, 4 * BOUND);
          expect(wrong(members), `still wrong ${4 * BOUND} ms after the last heal`).toEqual([]);
          expect(took).toBeLessThanOrEqual(BOUND);
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
              },
              {
                minority: ["e"],
                leaderWithMinority: false,
                readsFail: true,
                crash: undefined,
                crashAfter: 0,
                lasts: 240,
                healed: 0,
              },
            ],
            -966111556,
          ],
        ],
      },
    );
  });
});
