// What an observer learns from the running cluster before it starts: the settings it was not
// given are adopted from the first member's sync reply, given ones must match, and with no
// member to ask it fails with StartTimeoutError. On the simulated bus with a virtual clock.
import {
  ConfigMismatchError,
  membershipSubjects,
  ShardNode,
  type ShardNodeOptions,
  StartTimeoutError,
  silentLogger,
} from "@keyhold/core";
import { SimBus, seededRandom, VirtualClock } from "@keyhold/testing";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";

const packr = new Packr({ useRecords: false });
const CLUSTER = { ringSize: 32, heartbeatMs: 200, ttlMs: 1000, skewMs: 300 } as const;

function setup(): SimBus {
  return new SimBus(new VirtualClock(), { latencyMs: 1, random: seededRandom(7) });
}

/** Starts a node, driving the virtual clock until start settles; resolves or rejects like start. */
async function start(
  bus: SimBus,
  id: string,
  options: Omit<ShardNodeOptions, "cluster">,
): Promise<ShardNode> {
  let settled = false;
  const p = ShardNode.start({
    transport: bus.connect(id),
    clock: bus.clock,
    cluster: "obs",
    nodeId: id,
    logger: silentLogger,
    ...options,
  }).finally(() => {
    settled = true;
  });
  p.catch(() => {});
  while (!settled) await bus.clock.advance(5);
  return p;
}

describe("an observer adopts the cluster's settings", () => {
  it("takes ring size and lease timings it was not given from the running members", async () => {
    const bus = setup();
    const a = await start(bus, "a", CLUSTER);
    const b = await start(bus, "b", CLUSTER);
    const o = await start(bus, "o", { observer: true });
    expect(o.config).toEqual(a.config);
    expect(o.config).toMatchObject(CLUSTER);
    await bus.clock.advance(CLUSTER.heartbeatMs * 2);
    expect(o.members()).toEqual(["a", "b"]);
    for (let i = 0; i < 200; i++) expect(o.place(`k${i}`)).toBe(a.place(`k${i}`));
    // It stays in step: long past the default TTL of 6000 ms, and no member saw it heartbeat.
    await bus.clock.advance(8000);
    expect(o.members()).toEqual(["a", "b"]);
    expect(a.members()).toEqual(["a", "b"]);
    await Promise.all([o.close(), a.close(), b.close()]);
  });

  it("keeps a setting it was given and refuses a cluster that differs in it, naming it", async () => {
    const bus = setup();
    await start(bus, "a", CLUSTER);
    // Given and equal: fine, the rest is adopted.
    const same = await start(bus, "o1", { observer: true, heartbeatMs: 200 });
    expect(same.config.ttlMs).toBe(1000);
    const err = await start(bus, "o2", { observer: true, heartbeatMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigMismatchError);
    const mismatch = err as ConfigMismatchError;
    expect(mismatch.differences.map((d) => d.setting)).toEqual(["heartbeatMs"]);
    expect(mismatch.message).toContain("heartbeatMs is 2000 here but 200");
    // ringSize too: an explicit 64 against the cluster's 32.
    const ring = await start(bus, "o3", { observer: true, ringSize: 64 }).catch((e: unknown) => e);
    expect((ring as ConfigMismatchError).differences).toEqual([
      { setting: "ringSize", ours: 64, theirs: 32 },
    ]);
    await same.close();
  });

  it("members keep refusing any mismatch, given or default", async () => {
    const bus = setup();
    await start(bus, "a", CLUSTER);
    const err = await start(bus, "b", { ringSize: 32, heartbeatMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigMismatchError);
    expect((err as ConfigMismatchError).differences.map((d) => d.setting).sort()).toEqual([
      "skewMs",
      "ttlMs",
    ]);
  });

  it("fails with StartTimeoutError when no member answers within startTimeoutMs", async () => {
    const bus = setup();
    const t0 = bus.clock.now();
    const err = await start(bus, "o", { observer: true, startTimeoutMs: 1500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartTimeoutError);
    expect((err as Error).message).toMatch(/No member of cluster "obs" was heard within 1500 ms/);
    expect(bus.clock.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(bus.clock.now() - t0).toBeLessThan(3000);
  });

  it("waits for a member that starts within startTimeoutMs", async () => {
    const bus = setup();
    let settled = false;
    const p = ShardNode.start({
      transport: bus.connect("o"),
      clock: bus.clock,
      cluster: "obs",
      nodeId: "o",
      observer: true,
      logger: silentLogger,
    }).finally(() => {
      settled = true;
    });
    await bus.clock.advance(1000);
    expect(settled).toBe(false);
    const a = await start(bus, "a", CLUSTER);
    while (!settled) await bus.clock.advance(5);
    const o = await p;
    expect(o.config.ringSize).toBe(32);
    await Promise.all([o.close(), a.close()]);
  });

  it("given every setting, starts without a member, as before", async () => {
    const bus = setup();
    const o = await start(bus, "o", { observer: true, ...CLUSTER });
    expect(o.members()).toEqual([]);
    await o.close();
  });

  it("skips a reply whose settings it would refuse as options, and malformed replies", async () => {
    const bus = setup();
    const evil = bus.connect("evil");
    const subject = membershipSubjects("obs").sync;
    let n = 0;
    evil.subscribe(subject, (m) => {
      if (!m.reply) return;
      n++;
      const cfg = {
        ringSize: 1_000_000_000,
        heartbeatMs: 200,
        ttlMs: 1000,
        skewMs: 300,
        hash: "murmur3-32-hrw/1+caps/1",
      };
      evil.publish(
        m.reply,
        n % 2 === 0
          ? new Uint8Array([0xc1])
          : packr.pack({ v: 1, k: "table", id: "evil", cfg, leases: [], left: [] }),
      );
    });
    const err = await start(bus, "o", { observer: true, startTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartTimeoutError);
    expect(n).toBeGreaterThan(1);
  });

  it("learns the settings from a heartbeat when sync requests get no answer (a client not allowed to send them)", async () => {
    const bus = setup();
    const member = bus.connect("m");
    const hb = membershipSubjects("obs").heartbeat;
    const beat = () =>
      member.publish(
        hb,
        packr.pack({
          v: 1,
          k: "hb",
          id: "m",
          at: bus.clock.now(),
          cfg: { ...CLUSTER, hash: "murmur3-32-hrw/1+caps/1" },
        }),
      );
    let timer: unknown;
    const tick = () => {
      beat();
      timer = bus.clock.setTimeout(tick, CLUSTER.heartbeatMs);
    };
    tick();
    const o = await start(bus, "o", { observer: true });
    expect(o.config).toMatchObject(CLUSTER);
    await bus.clock.advance(CLUSTER.heartbeatMs * 2);
    expect(o.members()).toEqual(["m"]);
    bus.clock.clearTimeout(timer);
    await o.close();
  });

  it("refuses a hash version it does not implement, even when not given", async () => {
    const bus = setup();
    const evil = bus.connect("evil");
    evil.subscribe(membershipSubjects("obs").sync, (m) => {
      if (!m.reply) return;
      const cfg = { ...CLUSTER, hash: "other-hash/9" };
      evil.publish(m.reply, packr.pack({ v: 1, k: "table", id: "evil", cfg, leases: [], left: [] }));
    });
    const err = await start(bus, "o", { observer: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigMismatchError);
    expect((err as ConfigMismatchError).differences.map((d) => d.setting)).toEqual(["hash version"]);
  });
});
