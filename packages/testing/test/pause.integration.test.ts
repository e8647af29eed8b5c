// pause()/resume() (SIGSTOP/SIGCONT) on node processes, and acknowledgement records collected
// from several processes over IPC.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ring } from "@keyhold/core";
import { analyzeAcks, lostWrites, NatsServer, ShardingProcess, waitFor } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";

const FIXTURE = fileURLToPath(new URL("./fixtures/ack-entities.ts", import.meta.url));
const LEASE = { heartbeatMs: 100, ttlMs: 400, skewMs: 200 } as const;
const procs: ShardingProcess[] = [];
afterEach(async () => {
  await Promise.allSettled(procs.splice(0).map((p) => p.kill()));
});

async function spawn(url: string, cluster: string): Promise<ShardingProcess> {
  const p = await ShardingProcess.spawn(
    { servers: url, cluster, ...LEASE, handoffTimeoutMs: 5_000 },
    FIXTURE,
  );
  procs.push(p);
  return p;
}

async function membersOf(p: ShardingProcess): Promise<string[]> {
  return (await p.state()).members;
}

/** The state letter of a Linux process in /proc ("T" = stopped). */
function procState(pid: number): string {
  return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] ?? "?";
}

describe("IpcProcess pause/resume", () => {
  it("a paused node loses its lease (peers drop it), and rejoins after resume", async () => {
    await using srv = await NatsServer.start();
    const nodes = [await spawn(srv.url, "pz"), await spawn(srv.url, "pz"), await spawn(srv.url, "pz")];
    const [a, b, c] = nodes as [ShardingProcess, ShardingProcess, ShardingProcess];
    const ids = nodes.map((n) => n.id).sort();
    for (const n of nodes) await waitFor(async () => (await membersOf(n)).length === 3, { timeout: 15_000 });

    c.pause();
    expect(c.paused).toBe(true);
    await waitFor(() => procState(c.pid) === "T", { message: "SIGSTOP did not stop the process" });
    // Peers wait out the ttl and drop it; it cannot answer anything meanwhile.
    for (const n of [a, b]) {
      await waitFor(async () => !(await membersOf(n)).includes(c.id), {
        timeout: 15_000,
        message: "peers still list the paused node",
      });
    }
    await expect(c.state({ timeout: 500 })).rejects.toThrow(/did not answer/);
    // While it is stopped, its keys are served by the others.
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    for (const [i, k] of keys.entries()) {
      const r = await a.ask("acked-counter", k, "add", [1, `during-${i}`], 5_000);
      expect(r.ok).toBe(true);
    }
    expect(procState(c.pid)).toBe("T");

    c.resume();
    expect(c.paused).toBe(false);
    await waitFor(() => procState(c.pid) !== "T");
    for (const n of nodes) {
      await waitFor(async () => (await membersOf(n)).sort().join() === ids.join(), {
        timeout: 15_000,
        message: "the resumed node did not rejoin",
      });
    }
  });

  it("collects acknowledgement records from every node process, with no overlap or loss in a calm run", async () => {
    await using srv = await NatsServer.start();
    const nodes = [await spawn(srv.url, "ack"), await spawn(srv.url, "ack")];
    for (const n of nodes) await waitFor(async () => (await membersOf(n)).length === 2, { timeout: 15_000 });
    // The second node joins step by step (the default): wait until both own what they win.
    await waitFor(
      async () => {
        const states = await Promise.all(nodes.map((n) => n.state()));
        const ring = new Ring(states[0]!.members, 64);
        return states.every((st, i) => st.owned.join() === ring.partitionsOf(nodes[i]!.id).join());
      },
      { timeout: 15_000 },
    );
    const keys = Array.from({ length: 16 }, (_, i) => `key-${i}`);
    let op = 0;
    for (let round = 0; round < 3; round++) {
      for (const k of keys) {
        const from = nodes[op % 2] as ShardingProcess;
        const r = await from.ask("acked-counter", k, "add", [1, `op-${op++}`], 5_000);
        expect(r.ok).toBe(true);
      }
    }
    const final = new Map<string, string[]>();
    for (const k of keys) {
      const r = await (nodes[0] as ShardingProcess).ask("acked-counter", k, "read", [], 5_000);
      if (!r.ok) throw new Error(r.message);
      final.set(k, (r.result as { applied: string[] }).applied);
    }
    const records = nodes.flatMap((n) => n.acks);
    expect(records).toHaveLength(op);
    expect(new Set(records.map((r) => r.node)).size).toBe(2); // both nodes own some keys
    expect(nodes.every((n) => n.malformedAcks === 0)).toBe(true);
    const analysis = analyzeAcks(records);
    expect(analysis.keys).toBe(keys.length);
    expect(analysis.keysWithOverlap).toEqual([]);
    expect(lostWrites(records, (k) => final.get(k))).toEqual({ lost: [], acked: op });
  });
});
