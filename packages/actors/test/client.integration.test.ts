// A client that needs neither the entity classes nor the lease settings, against node processes
// on a real nats-server started with heartbeatMs 200 and ttlMs 1000: it adopts the cluster's
// settings, sends through a type-only reference, and gets the owner's verdict on handler names
// and arguments; a raw NATS client sending wrong arguments gets InvalidArgumentsError data.
import { fileURLToPath } from "node:url";
import { InvalidArgumentsError, nodeSubject, Sharding, UnknownHandlerError } from "@keyhold/actors";
import { ConfigMismatchError, StartTimeoutError, silentLogger } from "@keyhold/core";
import { NatsServer, ShardingProcess, waitFor } from "@keyhold/testing";
import { connect } from "@nats-io/transport-node";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ledger } from "./fixtures/schema-entities.js";

const ENTITIES = fileURLToPath(new URL("./fixtures/schema-entities.ts", import.meta.url));
const CLUSTER = "typed";
let srv: NatsServer;
const nodes: ShardingProcess[] = [];

beforeAll(async () => {
  srv = await NatsServer.start();
  for (const id of ["n1", "n2"]) {
    nodes.push(
      await ShardingProcess.spawn(
        { servers: srv.url, cluster: CLUSTER, nodeId: id, heartbeatMs: 200, ttlMs: 1000 },
        ENTITIES,
      ),
    );
  }
}, 60_000);

afterAll(async () => {
  for (const n of nodes) await n.kill().catch(() => {});
  await srv?.close();
});

describe("a client without classes or lease settings, over NATS", () => {
  it("adopts the cluster's settings and sends through a type-only reference", async () => {
    await using client = await Sharding.connect({ servers: srv.url, cluster: CLUSTER, logger: silentLogger });
    expect(client.node.config).toMatchObject({ ringSize: 64, heartbeatMs: 200, ttlMs: 1000, skewMs: 5000 });
    await waitFor(() => client.node.members().length === 2, { message: "client sees both nodes" });
    const ref = client.ref<Ledger>("ledger", "acct-1");
    expect(await ref.add(5)).toBe(5);
    expect(await ref.add(2)).toBe(7);
    expect(await ref.label("hi", 2)).toBe("hihi");
    // The owner checks what the client could not.
    const bad = await ref.add(0.5).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidArgumentsError);
    expect((bad as InvalidArgumentsError).issues).toHaveLength(1);
    expect((bad as InvalidArgumentsError).issues[0]!.path).toEqual([0]);
    const badAsync = await ref.addChecked(-3).catch((e: unknown) => e);
    expect((badAsync as InvalidArgumentsError).issues[0]!.message).toBe("must not be negative");
    const unknown = await (ref as unknown as { sub(n: number): Promise<number> })
      .sub(1)
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(UnknownHandlerError);
    expect(await ref.calls()).toBe(3);
    // Past the default ttl of 6000 ms would not show it; the adopted 1000 ms lease must hold
    // across a few seconds with the members heartbeating every 200 ms.
    await new Promise((r) => setTimeout(r, 1500));
    expect(client.node.members()).toEqual(["n1", "n2"]);
  }, 60_000);

  it("refuses a cluster that differs in a setting it was given, naming the setting", async () => {
    const err = await Sharding.connect({
      servers: srv.url,
      cluster: CLUSTER,
      heartbeatMs: 2000,
      logger: silentLogger,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigMismatchError);
    expect((err as ConfigMismatchError).differences.map((d) => d.setting)).toEqual(["heartbeatMs"]);
    expect((err as Error).message).toContain("heartbeatMs is 2000 here but 200");
  }, 30_000);

  it("fails with StartTimeoutError when no member answers within startTimeoutMs", async () => {
    const t0 = Date.now();
    const err = await Sharding.connect({
      servers: srv.url,
      cluster: "nobody-here",
      startTimeoutMs: 1000,
      logger: silentLogger,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartTimeoutError);
    expect((err as Error).message).toMatch(/No member of cluster "nobody-here" was heard within 1000 ms/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  }, 30_000);

  it("members keep refusing any mismatch", async () => {
    const err = await ShardingProcess.spawn(
      { servers: srv.url, cluster: CLUSTER, nodeId: "n3", heartbeatMs: 200, ttlMs: 1200 },
      ENTITIES,
    ).catch((e: unknown) => e);
    expect(String(err)).toMatch(/ttlMs is 1200 here but 1000/);
  }, 60_000);

  it("a raw NATS client sending wrong arguments to an owner gets the issues, and nothing runs", async () => {
    const nc = await connect({ servers: srv.url });
    try {
      const packr = new Packr({ useRecords: false, mapsAsObjects: true });
      const ask = async (node: string, h: string, a: unknown[], id: string) => {
        const msg = { v: 1, k: "ask", id, t: "ledger", key: "raw-key", h, a, hop: 0 };
        const reply = await nc.request(nodeSubject(CLUSTER, node), packr.pack(msg), { timeout: 5000 });
        return packr.unpack(reply.data) as {
          k: string;
          r?: unknown;
          owner?: string;
          e?: { code: string; details?: unknown };
        };
      };
      // Find which node owns the key: a non-owner answers "moved" with the owner's id.
      let owner = "n1";
      const probe = await ask("n1", "calls", [], "raw-probe-1");
      if (probe.k === "moved") owner = probe.owner!;
      const attacks: unknown[][] = [["5"], [{ $gt: 1 }], [Number.NaN], [], [1, 2], [[1]], [null]];
      let i = 0;
      for (const a of attacks) {
        const r = await ask(owner, "add", a, `raw-attack-${i++}`);
        expect(r.k, JSON.stringify(a)).toBe("err");
        expect(r.e?.code).toBe("KH_INVALID_ARGUMENTS");
        expect(Array.isArray(r.e?.details)).toBe(true);
      }
      const move = await ask(owner, "move", [{ to: ["x"], amount: 1 }], "raw-move");
      expect((move.e!.details as { path: unknown[] }[]).map((d) => d.path)).toEqual([[0, "to"]]);
      expect(await ask(owner, "calls", [], "raw-calls")).toMatchObject({ k: "ok", r: 0 });
      expect(await ask(owner, "add", [4], "raw-ok-add")).toMatchObject({ k: "ok", r: 4 });
    } finally {
      await nc.close();
    }
  }, 30_000);
});
