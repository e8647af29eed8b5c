// A read-only handler on a `replicas: 3` entity beside a `replicas: 1` write (and a `replicas: 3`
// write), each a remote client's ask to 3 node processes at concurrency 64, in one run,
// round-robin, with the NATS messages and the CPU time each ask costs (all processes).
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import type { BenchContext, BenchModule, Row } from "../harness.js";
import { summarize } from "../harness.js";
import { Counter1, Counter3, entities } from "../replication/entities.js";
import {
  converged,
  cpuMicrosOf,
  getVarz,
  killAll,
  ownCpuMicros,
  spawnNodes,
} from "../replication/processes.js";
import { closedLoop, type KeyedOp, type LoadRun, percentile, pooled } from "./load.js";

const NODES = 3;
const CONCURRENCY = 64;
const TARGET_READ_VS_WRITE = 0.9;
/** No hand-off for this long (two heartbeats, the join steps once per heartbeat) means the partitions settled. */
const QUIET_MS = 5_000;

type Case = "write1" | "write3" | "read3";
const CASES: readonly Case[] = ["write1", "read3", "write3"];
const LABEL: Record<Case, string> = {
  write1: "add(1), replicas 1 (a write)",
  read3: "get(), replicas 3, read-only",
  write3: "add(1), replicas 3 (a write)",
};

export async function readOnlyAsks(ctx: BenchContext): Promise<void> {
  const plan = ctx.quick ? { keys: 2_000, rounds: 1, runMs: 400 } : { keys: 5_000, rounds: 3, runMs: 1_500 };
  const keys = Array.from({ length: plan.keys }, (_, i) => `key-${100_000 + i}`);
  await using server = await NatsServer.start();
  const nodes: ShardingProcess[] = [];
  let client: Sharding | undefined;
  try {
    ctx.log(`read-only: starting ${NODES} node processes`);
    nodes.push(
      ...(await spawnNodes(NODES, { servers: server.url, idleMs: 0, cluster: `bench-ro-${process.pid}` })),
    );
    client = await Sharding.connect({
      servers: server.url,
      cluster: `bench-ro-${process.pid}`,
      entities,
      logger: silentLogger,
    });
    await converged(client, nodes);
    await handedOver(client, nodes);
    const c = client;
    const ops: Record<Case, KeyedOp> = {
      write1: (k) => c.ask(Counter1, k, "add", [1]),
      write3: (k) => c.ask(Counter3, k, "add", [1]),
      read3: (k) => c.ask(Counter3, k, "get", []),
    };
    for (const name of CASES) await closedLoop(ops[name], keys, CONCURRENCY, ctx.quick ? 200 : 500);
    const runs = new Map<Case, LoadRun[]>();
    const cost = new Map<Case, { msgs: number; cpu: number }[]>();
    const cpuAll = () => ownCpuMicros() + nodes.reduce((a, n) => a + cpuMicrosOf(n.pid), 0);
    for (let r = 0; r < plan.rounds; r++) {
      for (const name of CASES) {
        const v0 = await getVarz(server.monitorUrl);
        const cpu0 = cpuAll();
        const run = await closedLoop(ops[name], keys, CONCURRENCY, plan.runMs);
        const cpu = cpuAll() - cpu0;
        const v1 = await getVarz(server.monitorUrl);
        runs.set(name, [...(runs.get(name) ?? []), run]);
        cost.set(name, [
          ...(cost.get(name) ?? []),
          { msgs: (v1.in_msgs - v0.in_msgs) / run.completed, cpu: cpu / run.completed },
        ]);
        ctx.log(`read-only round ${r + 1}/${plan.rounds} ${name}: ${Math.round(run.rate)} asks/s`);
      }
    }
    const rows: Row[] = [];
    const rate = (name: Case) => summarize(runs.get(name)!.map((x) => x.rate)).median;
    for (const name of CASES) {
      const lat = pooled(runs.get(name)!);
      const msgs = summarize(cost.get(name)!.map((x) => x.msgs)).median;
      const cpu = summarize(cost.get(name)!.map((x) => x.cpu)).median;
      ctx.figure(`readOnly.${name}.rate`, rate(name), "asks/s");
      ctx.figure(`readOnly.${name}.natsMsgsPerAsk`, msgs, "msgs");
      ctx.figure(`readOnly.${name}.cpuUsPerAsk`, cpu, "us");
      rows.push({
        case: LABEL[name],
        concurrency: CONCURRENCY,
        "per s": rate(name),
        "p50 ms": percentile(lat, 50),
        "p99 ms": percentile(lat, 99),
        "x write r1": rate(name) / rate("write1"),
        "NATS msgs/ask": msgs,
        "CPU us/ask (all)": cpu,
      });
    }
    // Paired per round: each read round over the write round just before it.
    const w = runs.get("write1")!;
    const ratio = summarize(runs.get("read3")!.map((x, i) => x.rate / w[i]!.rate)).median;
    ctx.figure("readOnly.read3.vsWrite1", ratio, "x");
    ctx.target(
      `read-only on replicas 3 >= ${TARGET_READ_VS_WRITE}x a replicas 1 write, concurrency ${CONCURRENCY}`,
      "readOnly.read3.vsWrite1",
      ratio,
      ">=",
      TARGET_READ_VS_WRITE,
      "x",
    );
    ctx.table(
      `Read-only vs writes, ${NODES} node processes, remote client, ${plan.rounds} x ${plan.runMs} ms per cell`,
      rows,
      [
        `${plan.keys.toLocaleString("en-US")} keys round-robin. get() is declared in \`static readOnly\`: no version bump, no`,
        "replica copies, no store write. NATS msgs/ask = messages the server received per ask (varz in_msgs,",
        "heartbeats included); CPU = user + system of the client and the 3 nodes per ask (nats-server not counted).",
      ].join("\n"),
    );
  } finally {
    await client?.close().catch(() => {});
    await killAll(nodes);
  }
}

/**
 * Waits until the partitions have stopped moving: each one served by the node the client's ring
 * places it on, and no hand-off completed for QUIET_MS. Nodes join step by step
 * (joinStepPartitions "auto": a quarter of what a node wins per heartbeat), so the ring
 * converges seconds before the last partitions arrive. Measured before that, the rounds timed
 * hand-offs: a read of an entity whose record just arrived writes it to its replicas first
 * (its state is not known durable in this tenure, slots.ts `unconfirmed`), which made the first
 * rounds' reads on `replicas: 3` cost twice a write.
 */
async function handedOver(client: Sharding, nodes: readonly ShardingProcess[]): Promise<void> {
  let last = -1;
  let since = 0;
  await waitFor(
    async () => {
      const states = await Promise.all(nodes.map((n) => n.state()));
      const ring = client.node.ring;
      const placed = states.every((s) => {
        const owned = new Set(s.owned);
        for (let p = 0; p < ring.ringSize; p++)
          if ((ring.ownerOfPartition(p) === s.id) !== owned.has(p)) return false;
        return true;
      });
      const done = states.reduce((a, s) => a + s.handoffs.length, 0);
      if (!placed || done !== last) {
        last = done;
        since = performance.now();
        return false;
      }
      return performance.now() - since >= QUIET_MS;
    },
    { timeout: 60_000, interval: 100, message: "the partitions did not settle on their owners" },
  );
}

/** This part alone: `npm run bench -- actors-read-only`. */
export const bench: BenchModule = {
  name: "actors-read-only",
  about: "read-only asks on replicas 3 beside replicas 1 and replicas 3 writes (a part of `actors`)",
  run: (ctx) => readOnlyAsks(ctx),
};
