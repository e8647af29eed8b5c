// The admin responder over the simulated bus with a virtual clock: members answer a status
// request (observers do not), hostile admin input is counted and dropped, drain needs
// admin.allowDrain, and the reply decoder never throws and copies only known fields.
import {
  ADMIN_WIRE_VERSION,
  type AdminReply,
  adminSubjects,
  DRAIN_NOT_ALLOWED,
  decodeAdminReply,
  decodeAdminRequest,
  encodeAdmin,
  InvalidOptionError,
  isAdminMalformed,
  parseAdminOptions,
  ShardNode,
  type ShardNodeOptions,
  silentLogger,
} from "@keyhold/core";
import { SimBus, type SimEndpoint, VirtualClock } from "@keyhold/testing";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";

const LEASE = { heartbeatMs: 100, ttlMs: 300, skewMs: 200 } as const;
const packr = new Packr({ useRecords: false });

async function start(bus: SimBus, id: string, extra: Partial<ShardNodeOptions> = {}): Promise<ShardNode> {
  let settled = false;
  const p = ShardNode.start({
    transport: bus.connect(id),
    clock: bus.clock,
    cluster: "t",
    nodeId: id,
    ...LEASE,
    logger: silentLogger,
    ...extra,
  }).finally(() => {
    settled = true;
  });
  p.catch(() => {});
  while (!settled) await bus.clock.advance(1);
  return p;
}

/** Publishes `data` to `subject` with a reply inbox; returns what came back after 50 virtual ms. */
async function ask(bus: SimBus, ep: SimEndpoint, subject: string, data: Uint8Array): Promise<AdminReply[]> {
  const inbox = bus.newInbox();
  const replies: AdminReply[] = [];
  const sub = ep.subscribe(inbox, (m) => {
    const r = decodeAdminReply(m.data);
    if (isAdminMalformed(r)) throw new Error(`malformed reply: ${r.error}`);
    replies.push(r);
  });
  bus.route(ep, subject, data, inbox);
  await bus.clock.advance(50);
  sub.unsubscribe();
  return replies;
}

const status = encodeAdmin({ v: 1, k: "status" });

describe("admin responder", () => {
  it("every member answers a status request, an observer does not", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await start(bus, "a");
    const b = await start(bus, "b");
    const obs = await start(bus, "obs", { observer: true });
    await bus.clock.advance(LEASE.heartbeatMs * 3);
    const replies = await ask(bus, bus.connect("cli"), adminSubjects("t").all, status);
    const reports = replies.map((r) => (r.k === "report" ? r.r : undefined));
    expect(reports.map((r) => r?.id).sort()).toEqual(["a", "b"]);
    for (const r of reports) {
      expect(r!.members).toEqual(["a", "b"]);
      expect(r!.config).toEqual({ ringSize: 64, ...LEASE, hash: "murmur3-32-hrw/1+caps/1" });
      expect(r!.leases.map(([id]) => id)).toEqual(["a", "b"]);
      for (const [, age] of r!.leases) expect(age).toBeLessThanOrEqual(LEASE.ttlMs);
      expect(r!.drainAllowed).toBe(false);
      expect(r!.entities).toBeUndefined(); // a bare ShardNode hosts no entities
    }
    expect([...reports[0]!.owned, ...reports[1]!.owned].sort((x, y) => x - y)).toEqual(
      Array.from({ length: 64 }, (_, i) => i),
    );
    expect(obs.admin).toBeUndefined();
    await Promise.all([a.close(), b.close(), obs.close()]);
  });

  it("hostile admin input is counted and dropped, and the node keeps answering", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await start(bus, "a", { admin: { allowDrain: true } });
    const ep = bus.connect("evil");
    const s = adminSubjects("t");
    const bad = [
      new Uint8Array([0xc1, 0xff]),
      new Uint8Array(0),
      packr.pack({ v: 2, k: "status" }),
      packr.pack({ v: 1, k: "rm -rf" }),
      packr.pack([1, "status"]),
      packr.pack({ v: 1, k: "drain", node: "a" }), // drain on the broadcast subject
      new Uint8Array(5000),
    ];
    for (const d of bad) expect(await ask(bus, ep, s.all, d)).toEqual([]);
    expect(await ask(bus, ep, s.node("a"), packr.pack({ v: 1, k: "drain", node: "b" }))).toEqual([]);
    expect(await ask(bus, ep, s.node("a"), packr.pack({ v: 1, k: "drain", node: "../x" }))).toEqual([]);
    bus.route(ep, s.all, status, undefined); // no reply subject
    await bus.clock.advance(10);
    expect(a.admin!.stats.malformed).toBe(bad.length + 3);
    expect(a.closed).toBe(false);
    expect(await ask(bus, ep, s.all, status)).toHaveLength(1);
    await a.close();
  });

  it("drain is refused without admin.allowDrain and leaves gracefully with it", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await start(bus, "a");
    const b = await start(bus, "b", { admin: { allowDrain: true } });
    await bus.clock.advance(LEASE.heartbeatMs * 3);
    const ep = bus.connect("cli");
    const s = adminSubjects("t");
    const refused = await ask(bus, ep, s.node("a"), encodeAdmin({ v: 1, k: "drain", node: "a" }));
    expect(refused).toEqual([
      {
        v: 1,
        k: "refused",
        code: DRAIN_NOT_ALLOWED,
        message: "node a was not started with admin.allowDrain: true",
      },
    ]);
    expect(a.admin!.stats.drainsRefused).toBe(1);
    expect(a.closed).toBe(false);
    const ok = await ask(bus, ep, s.node("b"), encodeAdmin({ v: 1, k: "drain", node: "b" }));
    expect(ok).toEqual([{ v: 1, k: "draining", node: "b" }]);
    await bus.clock.advance(LEASE.heartbeatMs);
    expect(b.closed).toBe(true);
    expect(a.members()).toEqual(["a"]);
    expect(a.departed()).toEqual(["b"]); // a graceful leave, not an expiry
    await a.close();
  });

  it("admin.enabled: false answers nothing; bad admin options name the option", async () => {
    const bus = new SimBus(new VirtualClock());
    const a = await start(bus, "a", { admin: { enabled: false } });
    expect(a.admin).toBeUndefined();
    expect(await ask(bus, bus.connect("cli"), adminSubjects("t").all, status)).toEqual([]);
    await a.close();
    expect(() => parseAdminOptions({ allowDrain: "yes" })).toThrow(
      new InvalidOptionError("admin.allowDrain", "a boolean", "yes"),
    );
    expect(() => parseAdminOptions({ enabled: 1 })).toThrow(/`admin.enabled` to be a boolean, got 1/);
    expect(() => parseAdminOptions(true)).toThrow(/`admin` to be an object/);
    await expect(
      ShardNode.start({ cluster: "t", servers: "nats://127.0.0.1:1", admin: { allowDrain: 1 } as never }),
    ).rejects.toThrow(InvalidOptionError);
  });
});

describe("admin wire", () => {
  it("decoders never throw on arbitrary input", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.anything().map((x) => packr.pack(x)),
        ),
        (data) => {
          const a = decodeAdminRequest(data);
          const b = decodeAdminReply(data);
          expect(typeof a).toBe("object");
          expect(typeof b).toBe("object");
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a valid report survives a round trip; extra fields are dropped, bad ones refused", () => {
    const r = {
      id: "n1",
      at: 1_700_000_000_000,
      startedAt: 1_699_999_990_000,
      fenced: false,
      config: { ringSize: 8, heartbeatMs: 100, ttlMs: 300, skewMs: 200, hash: "murmur3-32-hrw/1+caps/1" },
      members: ["n1", "n2"],
      leases: [
        ["n1", 12],
        ["n2", 40],
      ],
      departed: [],
      owned: [0, 3, 5],
      drainAllowed: true,
      membership: { heartbeatsSent: 3 },
      entities: {
        asksPerSec: 10.5,
        p50Ms: 0.2,
        p99Ms: null,
        handled: 100,
        mailbox: 2,
        types: [["counter", 4, 9]],
        handoffs: [[3, "pending"]],
        recent: [{ p: 5, from: ["n2"], ms: 12, records: 3, at: 1_700_000_000_000 }],
        stats: { host: { handled: 100 } },
      },
    };
    const decoded = decodeAdminReply(
      packr.pack({ v: ADMIN_WIRE_VERSION, k: "report", r: { ...r, evil: 1 } }),
    );
    expect(decoded).toEqual({ v: 1, k: "report", r });
    const broken: [string, unknown][] = [
      ["id", "no spaces allowed"],
      ["owned", [99999]],
      ["leases", [["n1", -1]]],
      ["config", { ...r.config, ringSize: 0 }],
      ["entities", { ...r.entities, handoffs: [[1, "stolen"]] }],
      ["entities", { ...r.entities, stats: { host: { handled: "many" } } }],
    ];
    for (const [field, value] of broken) {
      const d = decodeAdminReply(packr.pack({ v: 1, k: "report", r: { ...r, [field]: value } }));
      expect(isAdminMalformed(d), field).toBe(true);
    }
  });
});
