// Reminders across real processes on a real nats-server: the owner of a key is killed with
// SIGKILL just before its reminder falls due, and the reminder fires on the new owner within
// ttl + 1 heartbeat of its due time, exactly once: with replicas: 3, and with a JetStream KV store
// and no replicas for entities that are dormant when their owner dies.
import { fileURLToPath } from "node:url";
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer, ShardingProcess, type ShardingProcessOptions, waitFor } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type FireEvent, ReplicatedAlarm, StoredAlarm } from "./entities.js";

const ENTITIES = fileURLToPath(new URL("./entities.ts", import.meta.url));
const LEASE = { heartbeatMs: 200, ttlMs: 1000, skewMs: 500 } as const;

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function firesOf(nodes: readonly ShardingProcess[]): FireEvent[] {
  return nodes.flatMap((n) => n.oracle as unknown as FireEvent[]).filter((e) => e.event === "reminder");
}

describe("reminders with node processes", () => {
  it("replicas 3: the owner is SIGKILLed; each reminder fires on a new owner within ttl + 1 heartbeat of its due time, once", async () => {
    await killBeforeDue(ReplicatedAlarm, {});
  });

  it("a store, no replicas, dormant entities: the owner is SIGKILLed; each reminder fires on a new owner within ttl + 1 heartbeat, once", async () => {
    await killBeforeDue(StoredAlarm, { storeBucket: "remkill_kv", idleMs: 300 }, { jetstream: true });
  });
});

/**
 * Four node processes; reminders for 40 keys due in 3 s; the owner of some is killed with SIGKILL
 * 300 ms before the due time. Every reminder must fire once, the victim's on a survivor no later
 * than ttl + 1 heartbeat after the due time.
 */
async function killBeforeDue(
  cls: typeof ReplicatedAlarm,
  extra: Partial<ShardingProcessOptions>,
  server: { jetstream?: boolean } = {},
): Promise<void> {
  const srv = await NatsServer.start(server);
  cleanup.push(() => srv.close());
  const nodes: ShardingProcess[] = [];
  for (let i = 0; i < 4; i++) {
    const n = await ShardingProcess.spawn(
      {
        servers: srv.url,
        cluster: "remkill",
        ...LEASE,
        handoffTimeoutMs: 5000,
        ...extra,
      } as ShardingProcessOptions,
      ENTITIES,
    );
    nodes.push(n);
    cleanup.push(() => n.kill());
  }
  const client = await Sharding.connect({
    servers: srv.url,
    cluster: "remkill",
    ...LEASE,
    entities: [cls],
    logger: silentLogger,
  });
  cleanup.push(() => client.close());
  await waitFor(() => client.node.members().length === 4);
  // every node sees all four, so every write reaches its replicas
  await waitFor(async () =>
    (await Promise.all(nodes.map((n) => n.state()))).every((s) => s.members.length === 4),
  );
  // The nodes join step by step (the default): the victim's keys are picked once none is capped,
  // else a later step could move some of them off it before the kill.
  await waitFor(() => client.node.members().every((m) => client.node.ring.capOf(m) === undefined), {
    timeout: 10_000,
  });
  const victim = nodes[1]!;
  const keys = Array.from({ length: 40 }, (_, i) => `alarm-${i}`);
  const victimKeys = keys.filter((k) => client.node.place(k) === victim.id);
  expect(victimKeys.length).toBeGreaterThan(0);
  const due = Date.now() + 3000;
  for (const k of keys) await client.ref(cls, k).at("wake", due);
  // killed shortly before the due time: its reminders were never fired there
  await sleep(Math.max(0, due - 300 - Date.now()));
  if (extra.idleMs !== undefined) {
    const st = await victim.state();
    expect(st.stats.host.active, "the victim's entities are dormant").toBe(0);
  }
  await victim.kill("SIGKILL");
  expect(Date.now()).toBeLessThan(due);
  const survivors = nodes.filter((n) => n !== victim);
  await waitFor(() => new Set(firesOf(survivors).map((e) => e.key)).size === keys.length, {
    timeout: 15_000,
  });
  await sleep(LEASE.ttlMs + LEASE.heartbeatMs); // room for a duplicate to show up
  const fires = firesOf(nodes);
  for (const k of keys) {
    const mine = fires.filter((e) => e.key === k);
    expect(mine, k).toHaveLength(1);
    expect(mine[0]!.due).toBe(due);
    expect(mine[0]!.payloadDue).toBe(due);
    expect(mine[0]!.at).toBeGreaterThanOrEqual(due);
  }
  const late = fires.filter((e) => victimKeys.includes(e.key));
  expect(late.every((e) => e.pid !== victim.pid)).toBe(true);
  const worst = Math.max(...late.map((e) => e.at - due));
  expect(worst, `latest fire ${worst} ms after its due time`).toBeLessThanOrEqual(
    LEASE.ttlMs + LEASE.heartbeatMs,
  );
  // the fire ran as a message on the new owner, and its state says so
  for (const k of victimKeys) expect(await client.ref(cls, k).fired(), k).toBe(1);
}
