// Background work is not on the per-message hot path (issue 10): asks/s and latency of local and
// remote asks with the node's background queue idle, how many p-queue tasks the nodes added
// meanwhile (none per ask: only the maintenance timers add any), and, for scale, the same local
// ask with one p-queue add around each: what putting p-queue on the hot path would cost.
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import PQueue from "p-queue";
import { Counter, entities } from "./actors/entities.js";
import { closedLoop, type KeyedOp, type LoadRun, percentile, pooled } from "./actors/load.js";
import { type BenchModule, type Row, summarize } from "./harness.js";

const KEY_COUNT = 10_000;
const CONCURRENCY = 64;
/** Background tasks nodes may add per 10,000 asks: only their timers add any, whatever the traffic. */
const TARGET_ADDS_PER_10K_ASKS = 1;

type Case = "local" | "localViaPQueue" | "remote";
const CASES: readonly Case[] = ["local", "localViaPQueue", "remote"];
const LABEL: Record<Case, string> = {
  local: "(a) local ask, background idle",
  localViaPQueue: "(b) local ask, each through p-queue add",
  remote: "(c) remote ask, background idle",
};

const added = (s: Sharding): number => {
  const b = s.stats().background;
  return b.addedHandoff + b.addedRefill + b.addedMaintenance;
};

export const bench: BenchModule = {
  name: "background",
  about: "asks with the background queue idle vs one p-queue add per ask; p-queue adds during steady asks",
  async run(ctx) {
    const plan = ctx.quick
      ? { rounds: 1, runMs: 400, warmupMs: 200 }
      : { rounds: 3, runMs: 2_000, warmupMs: 500 };
    const keys = Array.from({ length: KEY_COUNT }, (_, i) => `user-${100_000 + i}`);
    const tag = `${process.pid}`;
    await using server = await NatsServer.start();
    const common = { servers: server.url, entities, logger: silentLogger, idleMs: 0 };
    const local = await Sharding.start({ ...common, cluster: `bench-bg-local-${tag}` });
    const host = await Sharding.start({ ...common, cluster: `bench-bg-remote-${tag}` });
    const client = await Sharding.connect({ ...common, cluster: `bench-bg-remote-${tag}` });
    try {
      await waitFor(() => keys.every((k) => local.node.place(k) === local.node.id), { timeout: 15_000 });
      await waitFor(() => keys.every((k) => client.node.place(k) === host.node.id), { timeout: 15_000 });
      // One queue for the whole comparison, unbounded like a hot path would need it.
      const hot = new PQueue();
      let hotAdds = 0;
      const ops: Record<Case, KeyedOp> = {
        local: (k) => local.ask(Counter, k, "add", [1]),
        localViaPQueue: (k) => {
          hotAdds++;
          return hot.add(() => local.ask(Counter, k, "add", [1]));
        },
        remote: (k) => client.ask(Counter, k, "add", [1]),
      };
      const nodeOf: Record<Case, Sharding> = { local, localViaPQueue: local, remote: host };
      ctx.log(`activating ${KEY_COUNT} entities on each node, warming up`);
      for (const k of keys) await local.ask(Counter, k, "add", [1]);
      await Promise.all(keys.map((k) => client.ask(Counter, k, "add", [1])));
      for (const name of CASES) await closedLoop(ops[name], keys, CONCURRENCY, plan.warmupMs);
      const runs = new Map<Case, LoadRun[]>();
      const adds = new Map<Case, number>();
      for (let r = 0; r < plan.rounds; r++) {
        for (const name of CASES) {
          const before = added(nodeOf[name]) + added(client);
          const hot0 = hotAdds;
          const run = await closedLoop(ops[name], keys, CONCURRENCY, plan.runMs);
          const nodeAdds = added(nodeOf[name]) + added(client) - before;
          adds.set(name, (adds.get(name) ?? 0) + nodeAdds + (hotAdds - hot0));
          runs.set(name, [...(runs.get(name) ?? []), run]);
          ctx.log(
            `round ${r + 1}/${plan.rounds} ${name}: ${Math.round(run.rate)} asks/s, ${nodeAdds} node p-queue adds`,
          );
        }
      }
      const rows: Row[] = [];
      const rate = (name: Case) => summarize(runs.get(name)!.map((x) => x.rate)).median;
      for (const name of CASES) {
        const rs = runs.get(name)!;
        const lat = pooled(rs);
        const completed = rs.reduce((s, x) => s + x.completed, 0);
        const per10k = (adds.get(name)! / completed) * 10_000;
        ctx.figure(`${name}.rate`, rate(name), "asks/s");
        ctx.figure(`${name}.p99Ms`, percentile(lat, 99), "ms");
        ctx.figure(`${name}.pqueueAddsPer10kAsks`, per10k, "adds");
        rows.push({
          case: LABEL[name],
          "per s": rate(name),
          "p50 ms": percentile(lat, 50),
          "p99 ms": percentile(lat, 99),
          "x (a)": rate(name) / rate("local"),
          asks: completed,
          "p-queue adds": adds.get(name)!,
        });
      }
      for (const name of ["local", "remote"] as const) {
        const completed = runs.get(name)!.reduce((s, x) => s + x.completed, 0);
        ctx.target(
          `p-queue adds per 10,000 ${name} asks with the background idle`,
          `${name}.pqueueAddsPer10kAsks`,
          (adds.get(name)! / completed) * 10_000,
          "<=",
          TARGET_ADDS_PER_10K_ASKS,
          "adds",
        );
      }
      const bg = local.stats().background;
      ctx.table(
        `Background work vs the hot path, closed loop at concurrency ${CONCURRENCY}, ${plan.rounds} x ${plan.runMs} ms per cell`,
        rows,
        [
          `add(1) -> number on ${KEY_COUNT.toLocaleString("en-US")} Counter entities, keys round-robin; all nodes in this process.`,
          "(a) the only member of its ring asks its own entities (the local fast path, the lean mailbox FIFO).",
          "(b) the same, with each ask wrapped in one PQueue.add (unbounded concurrency): p-queue on the hot path.",
          "(c) a Sharding.connect client asks a node of another ring over NATS.",
          "p-queue adds = tasks the asking and owning nodes added to their background queues during the timed",
          "runs (plus, in (b), the wrapper's own adds). Only timers add background tasks while nothing changes",
          "(housekeeping every handoffTimeoutMs, the idle sweep), never a message.",
          `The local node's background queue after the runs: ${bg.size} waiting, ${bg.pending} running; added in all: ` +
            `${bg.addedHandoff} hand-off, ${bg.addedRefill} refill, ${bg.addedMaintenance} maintenance.`,
        ].join("\n"),
      );
    } finally {
      await client.close().catch(() => {});
      await host.close().catch(() => {});
      await local.close().catch(() => {});
    }
  },
};
