// Hostile input over a real nats-server: garbage and malformed msgpack published on the
// membership subjects by a plain client are counted and dropped; the node processes carry on.
import { HASH_VERSION, membershipSubjects } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import { connect } from "@nats-io/transport-node";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import {
  alive,
  clusterName,
  expectAgreement,
  expectPartitionsCovered,
  Fleet,
  keys,
  LEASE,
  memberOptions,
  SETTLE_MS,
  states,
  waitForMembers,
} from "./support.js";

const IDS = ["n0", "n1", "n2"];
const packr = new Packr({ useRecords: false });
const pack = (x: unknown): Uint8Array => packr.pack(x);

/** Payloads every subject must reject before they touch any state. */
function garbage(now: number): [string, Uint8Array][] {
  const cfg = { ...LEASE, hash: HASH_VERSION };
  const hb = { v: 1, k: "hb", id: "intruder", at: now, cfg };
  const { v: _v, ...noVersion } = hb;
  const { cfg: _cfg, ...noConfig } = hb;
  const valid = pack(hb);
  let seed = 7;
  const random = Uint8Array.from({ length: 512 }, () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed & 0xff;
  });
  // 100,000 nested one-element arrays: a recursive decoder runs out of stack.
  const deep = new Uint8Array(100_001).fill(0x91);
  deep[100_000] = 0xc0;
  return [
    ["empty", new Uint8Array(0)],
    ["text", new TextEncoder().encode("hello, keyhold")],
    ["random bytes", random],
    ["truncated heartbeat", valid.subarray(0, valid.length - 5)],
    ["a msgpack string", pack("hb")],
    ["a msgpack array", pack([1, "hb", "intruder", now, cfg])],
    ["nil", pack(null)],
    ["no version", pack(noVersion)],
    ["version 2", pack({ ...hb, v: 2 })],
    ["id not a string", pack({ ...hb, id: 42 })],
    ["id with subject characters", pack({ ...hb, id: "a.b.>" })],
    ["id of 10,000 chars", pack({ ...hb, id: "x".repeat(10_000) })],
    ["time as text", pack({ ...hb, at: "now" })],
    ["negative time", pack({ ...hb, at: -1 })],
    ["fractional time", pack({ ...hb, at: now + 0.5 })],
    ["time past year 9999", pack({ ...hb, at: Number.MAX_SAFE_INTEGER })],
    ["time 1e308", pack({ ...hb, at: 1e308 })],
    ["time as a msgpack timestamp", pack({ ...hb, at: new Date(now) })],
    ["no config", pack(noConfig)],
    ["config of strings", pack({ ...hb, cfg: { ...cfg, ringSize: "64", ttlMs: "400" } })],
    ["hash name of 1,000 chars", pack({ ...hb, cfg: { ...cfg, hash: "h".repeat(1000) } })],
    ["unknown kind", pack({ ...hb, k: "promote" })],
    [
      "__proto__ in place of the version",
      pack(JSON.parse(`{"__proto__":{"v":1},"k":"hb","id":"intruder","at":${now}}`)),
    ],
    [
      "a sync reply with 20,000 leases",
      pack({
        v: 1,
        k: "table",
        id: "intruder",
        cfg,
        leases: Array(20_000).fill(["intruder", now]),
        left: [],
      }),
    ],
    ["array header claiming 1M elements", Uint8Array.of(0xdd, 0x00, 0x0f, 0x42, 0x40)],
    ["bin header claiming 4 GB", Uint8Array.of(0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3)],
    ["nested 100,000 deep", deep],
  ];
}

describe("hostile input on the membership subjects", () => {
  it("garbage and malformed msgpack are counted and dropped; members and placement hold", async () => {
    await using server = await NatsServer.start();
    await using fleet = new Fleet();
    const cluster = clusterName();
    const nodes = await fleet.spawnAll(memberOptions(cluster, server.url, 3));
    await waitForMembers(nodes, IDS);
    const pids = nodes.map((n) => n.pid);
    const before = await states(nodes);
    const marks = nodes.map((n) => n.events.length);

    const subjects = membershipSubjects(cluster);
    const now = Date.now();
    const cfg = { ...LEASE, hash: HASH_VERSION };
    const junk = garbage(now);
    // Well-formed messages of a kind that does not belong on the subject.
    const notAHeartbeat = [
      pack({ v: 1, k: "sync", id: "intruder", cfg }),
      pack({ v: 1, k: "table", id: "intruder", cfg, leases: [["intruder", now]], left: [] }),
    ];
    const notASyncRequest = [
      pack({ v: 1, k: "hb", id: "intruder", at: now, cfg }),
      pack({ v: 1, k: "leave", id: "n0", at: now }),
      pack({ v: 1, k: "table", id: "intruder", cfg, leases: [["intruder", now]], left: [] }),
    ];

    const nc = await connect({ servers: server.url });
    try {
      for (const [, data] of junk) {
        nc.publish(subjects.heartbeat, data);
        nc.publish(subjects.leave, data);
        // Sync requests are only read when they carry a reply address, so give them one.
        nc.publish(subjects.sync, data, { reply: "_INBOX.hostile" });
      }
      for (const data of notAHeartbeat) {
        nc.publish(subjects.heartbeat, data);
        nc.publish(subjects.leave, data);
      }
      for (const data of notASyncRequest) nc.publish(subjects.sync, data, { reply: "_INBOX.hostile" });
      // Well-formed but hostile: a real member's heartbeat from an hour ahead would pin its
      // lease for an hour; one from an hour ago, a config from another cluster, and leaves of
      // a live member from the future and from the past must all be turned away too.
      nc.publish(subjects.heartbeat, pack({ v: 1, k: "hb", id: "n0", at: now + 3_600_000, cfg }));
      nc.publish(subjects.heartbeat, pack({ v: 1, k: "hb", id: "intruder", at: now - 3_600_000, cfg }));
      nc.publish(
        subjects.heartbeat,
        pack({ v: 1, k: "hb", id: "intruder", at: now, cfg: { ...cfg, ringSize: 2 ** 40 } }),
      );
      nc.publish(subjects.leave, pack({ v: 1, k: "leave", id: "n0", at: now + 3_600_000 }));
      nc.publish(subjects.leave, pack({ v: 1, k: "leave", id: "n0", at: now - 3_600_000 }));
      await nc.flush();
    } finally {
      await nc.close();
    }

    const malformed = junk.length * 3 + notAHeartbeat.length * 2 + notASyncRequest.length;
    const delta = (s: Record<string, number>, i: number, k: string) =>
      (s[k] ?? 0) - (before[i]!.stats[k] ?? 0);
    await waitFor(
      async () => (await states(nodes)).every((s, i) => delta(s.stats, i, "malformed") >= malformed),
      {
        timeout: SETTLE_MS,
        message: `nodes did not count ${malformed} malformed messages each`,
      },
    );
    // A few more heartbeat rounds, so anything the input broke has time to show.
    const rounds = (await states(nodes)).map((s) => s.stats.heartbeatsAccepted ?? 0);
    await waitFor(
      async () => (await states(nodes)).every((s, i) => (s.stats.heartbeatsAccepted ?? 0) >= rounds[i]! + 9),
      { timeout: SETTLE_MS, message: "members stopped heartbeating" },
    );

    const after = await states(nodes);
    for (const [i, s] of after.entries()) {
      expect(delta(s.stats, i, "malformed"), `${s.id} malformed`).toBe(malformed);
      expect(delta(s.stats, i, "rejectedFuture"), `${s.id} rejectedFuture`).toBe(1);
      expect(delta(s.stats, i, "rejectedStale"), `${s.id} rejectedStale`).toBeGreaterThanOrEqual(1);
      expect(delta(s.stats, i, "configMismatch"), `${s.id} configMismatch`).toBe(1);
      expect(delta(s.stats, i, "leavesSeen"), `${s.id} leavesSeen`).toBe(2);
      expect(s.members).toEqual(IDS);
    }
    expectPartitionsCovered(after);
    await expectAgreement(nodes, IDS, keys(2000));
    for (const pid of pids) expect(alive(pid)).toBe(true);
    // Not even a moment of churn: no member change, no ownership change since the input.
    expect(nodes.flatMap((n, i) => n.events.slice(marks[i]))).toEqual([]);

    // The forged future heartbeat did not pin n0's lease: killed, it still expires.
    await nodes[0]!.kill();
    await waitForMembers(nodes.slice(1), ["n1", "n2"]);
  });
});
