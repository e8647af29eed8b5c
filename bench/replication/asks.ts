// Asks per second and latency of a remote client's add(1) for replicas 1, 2 and 3 (3 node
// processes), for replicas 1 written through to a NATS JetStream KV bucket (3 more node
// processes), and for a raw NATS request/reply echo with the same payload sizes: the ceiling
// (see echo.ts). All in one run, round-robin, with the CPU time and NATS messages each ask
// costs in each process.
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { type EntityClass, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer, type RunningChild, type ShardingProcess } from "@keyhold/testing";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Packr } from "msgpackr";
// The closed-loop driver of the actors benchmark: the same load shape, so figures compare.
import { closedLoop, type KeyedOp, percentile, pooled } from "../actors/load.js";
import { type BenchContext, type Row, summarize } from "../harness.js";
import { CASES, type Case, type Cell, costModel, LABEL } from "./cost-model.js";
import { RawRequester, spawnEcho } from "./echo.js";
import { Counter1, Counter2, Counter3, entities } from "./entities.js";
import { converged, cpuMicrosOf, getVarz, killAll, ownCpuMicros, spawnNodes } from "./processes.js";
import { groupCommitTargets } from "./targets.js";

/** Concurrency 64 for throughput, 1 for the latency of one ask alone. */
const CONCURRENCY = [64, 1] as const;
const NODES = 3;
/** The same per-attempt deadline Keyhold's router uses by default. */
const REQUEST_TIMEOUT_MS = 3_000;

/** The one key every ask of the hot-key cases goes to. */
const HOT_KEY = "hot-key";
interface Plan {
  readonly keys: number;
  readonly rounds: number;
  readonly runMs: number;
  readonly warmupMs: number;
}

export async function replicatedAsks(ctx: BenchContext): Promise<void> {
  const plan: Plan = ctx.quick
    ? { keys: 2_000, rounds: 1, runMs: 400, warmupMs: 200 }
    : { keys: 5_000, rounds: 3, runMs: 1_500, warmupMs: 500 };
  const keys = Array.from({ length: plan.keys }, (_, i) => `key-${100_000 + i}`);
  const tag = `${process.pid}`;
  const echoSubject = `bench.rep.echo.${tag}`;
  ctx.info("asks.loadAverageAtStart", loadavg()[0]!.toFixed(2));

  // The echo carries as many bytes as an ask and its reply (wire.ts's Packr options; a uuid id,
  // a key and a type name of these lengths, a counter value past 255).
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  const askBytes = packr.pack({
    v: 1,
    k: "ask",
    id: randomUUID(),
    t: Counter1.type,
    key: keys[0]!,
    h: "add",
    a: [1],
    hop: 0,
  });
  const replyBytes = packr.pack({ v: 1, k: "ok", r: 1_000 });
  // What a primary sends each replica per write: the record with its last 8 applied asks (ids).
  const repBytes = packr.pack({
    v: 1,
    k: "rep",
    p: 17,
    from: randomUUID().replaceAll("-", ""),
    recs: [
      {
        t: Counter3.type,
        key: keys[0]!,
        s: { n: 1_000 },
        ver: 1_000,
        act: true,
        ids: Array.from({ length: 8 }, () => [randomUUID(), true, 1_000]),
      },
    ],
  });
  ctx.info("asks.requestBytes", askBytes.length);
  ctx.info("asks.replyBytes", replyBytes.length);
  ctx.info("asks.replicationMessageBytes", repBytes.length);

  await using server = await NatsServer.start({ jetstream: true });
  ctx.info("natsServer", (await getVarz(server.monitorUrl)).version);
  const plainNodes: ShardingProcess[] = [];
  const kvNodes: ShardingProcess[] = [];
  const noGcNodes: ShardingProcess[] = [];
  let echo: RunningChild | undefined;
  let plain: Sharding | undefined;
  let kv: Sharding | undefined;
  let noGc: Sharding | undefined;
  let nc: NatsConnection | undefined;
  let raw: RawRequester | undefined;
  try {
    ctx.log(
      `starting ${NODES} node processes, ${NODES} more with a KV store, ${NODES} without group commit, and the echo process`,
    );
    const plainCluster = `bench-rep-${tag}`;
    const kvCluster = `bench-rep-kv-${tag}`;
    const noGcCluster = `bench-rep-nogc-${tag}`;
    // Nothing may passivate between rounds: every entity stays live.
    const base = { servers: server.url, idleMs: 0 };
    const [p, k, g, e] = await Promise.all([
      spawnNodes(NODES, { ...base, cluster: plainCluster }),
      spawnNodes(NODES, { ...base, cluster: kvCluster, storeBucket: `bench_rep_${tag}` }),
      spawnNodes(NODES, { ...base, cluster: noGcCluster, groupCommit: false }),
      spawnEcho(server.url, echoSubject, replyBytes),
    ]);
    plainNodes.push(...p);
    kvNodes.push(...k);
    noGcNodes.push(...g);
    echo = e;
    const client = { servers: server.url, entities, logger: silentLogger };
    plain = await Sharding.connect({ ...client, cluster: plainCluster });
    kv = await Sharding.connect({ ...client, cluster: kvCluster });
    noGc = await Sharding.connect({ ...client, cluster: noGcCluster });
    nc = await connect({ servers: server.url, name: `keyhold-bench-rep-echo-client-${tag}` });
    raw = new RawRequester(nc, REQUEST_TIMEOUT_MS);
    await converged(plain, plainNodes);
    await converged(kv, kvNodes);
    await converged(noGc, noGcNodes);

    const pc = plain;
    const kc = kv;
    const gc = noGc;
    const n = nc;
    const rr = raw;
    const ask =
      (s: Sharding, cls: EntityClass): KeyedOp =>
      (key) =>
        s.ask(cls, key, "add", [1]);
    const ops: Record<Case, KeyedOp> = {
      echo: () => rr.request(echoSubject, askBytes),
      echoRequest: () => n.request(echoSubject, askBytes, { timeout: REQUEST_TIMEOUT_MS }),
      replicas1: ask(pc, Counter1),
      replicas2: ask(pc, Counter2),
      replicas3: ask(pc, Counter3),
      kv: ask(kc, Counter1),
      // Every worker asks the same entity: its messages queue behind each other.
      hot3: () => pc.ask(Counter3, HOT_KEY, "add", [1]),
      hot3NoGc: () => gc.ask(Counter3, HOT_KEY, "add", [1]),
    };
    const echoPid = echo.process.pid ?? -1;
    const pids: Record<Case, readonly number[]> = {
      echo: [echoPid],
      echoRequest: [echoPid],
      replicas1: plainNodes.map((x) => x.pid),
      replicas2: plainNodes.map((x) => x.pid),
      replicas3: plainNodes.map((x) => x.pid),
      kv: kvNodes.map((x) => x.pid),
      hot3: plainNodes.map((x) => x.pid),
      hot3NoGc: noGcNodes.map((x) => x.pid),
    };

    // Activate every entity (a KV entity loads from the store once), then warm each path up.
    ctx.log(`activating ${plan.keys} entities per case, warming up`);
    for (const name of CASES) {
      // The hot-key cases ask one entity: covering every key would only ask it thousands of times.
      if (name !== "hot3" && name !== "hot3NoGc") await cover(ops[name], keys);
      await closedLoop(ops[name], keys, 64, plan.warmupMs);
    }

    const cells = new Map<string, Cell[]>();
    for (let r = 0; r < plan.rounds; r++) {
      // Round-robin over concurrencies and cases: a burst of other work on this shared machine
      // hits every cell a little rather than one cell a lot.
      for (const conc of CONCURRENCY) {
        for (const name of CASES) {
          const cell = await measure(ops[name], keys, conc, plan.runMs, pids[name], server);
          const id = `${name}@${conc}`;
          cells.set(id, [...(cells.get(id) ?? []), cell]);
          ctx.log(`round ${r + 1}/${plan.rounds} ${name} c=${conc}: ${Math.round(cell.run.rate)} asks/s`);
        }
      }
    }

    const rows: Row[] = [];
    const get = (name: Case, conc: number) => cells.get(`${name}@${conc}`)!;
    const med = (name: Case, conc: number, f: (c: Cell) => number) =>
      summarize(get(name, conc).map(f)).median;
    // Each round's rate over the ceiling echo's in the same round (run just before it, so under
    // the same load from whatever else this machine runs), summarised over rounds.
    const vsCeiling = (name: Case, conc: number) => {
      const e = get("echo", conc);
      return summarize(get(name, conc).map((c, i) => c.run.rate / e[i]!.run.rate)).median;
    };
    const lat = new Map<string, { p50: number; p99: number }>();
    for (const conc of CONCURRENCY) {
      for (const name of CASES) {
        const all = pooled(get(name, conc).map((c) => c.run));
        const p50 = percentile(all, 50);
        const p99 = percentile(all, 99);
        lat.set(`${name}@${conc}`, { p50, p99 });
        const rate = med(name, conc, (c) => c.run.rate);
        const ratio = vsCeiling(name, conc);
        const client = med(name, conc, (c) => c.clientCpuUs);
        const serverSide = med(name, conc, (c) => c.serverSideCpuUs);
        const natsCpu = med(name, conc, (c) => c.natsCpuUs);
        const msgs = med(name, conc, (c) => c.natsMsgs);
        const bytes = med(name, conc, (c) => c.natsBytes);
        const isEcho = name === "echo" || name === "echoRequest";
        const fig = isEcho ? `${name}[${conc}]` : `ask.${name}[${conc}]`;
        ctx.figure(`${fig}.rate`, rate, isEcho ? "req/s" : "asks/s");
        ctx.figure(`${fig}.p50Ms`, p50, "ms");
        ctx.figure(`${fig}.p99Ms`, p99, "ms");
        if (name !== "echo") ctx.figure(`${fig}.vsCeiling`, ratio, "x");
        ctx.figure(`${fig}.clientCpuUs`, client, "us");
        ctx.figure(`${fig}.serverSideCpuUs`, serverSide, "us");
        ctx.figure(`${fig}.natsServerCpuUs`, natsCpu, "us");
        ctx.figure(`${fig}.natsMsgsPerAsk`, msgs, "msg");
        ctx.figure(`${fig}.natsBytesPerAsk`, bytes, "B");
        rows.push({
          case: LABEL[name],
          concurrency: conc,
          "per s": rate,
          "p50 ms": p50,
          "p99 ms": p99,
          "x ceiling": ratio,
          "client CPU us": client,
          "nodes CPU us": serverSide,
          "nats CPU us": natsCpu,
          "total CPU us": client + serverSide + natsCpu,
          "NATS msgs": msgs,
          "NATS B": bytes,
          samples: all.length,
        });
      }
    }

    // Evidence that each case took the path it is named for, and did not fail its way to a rate.
    const plainStats = await Promise.all([...plainNodes, ...noGcNodes].map((x) => x.state()));
    const kvStats = await Promise.all(kvNodes.map((x) => x.state()));
    const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
    const repWrites = sum(plainStats.map((s) => s.stats.replication.writes));
    const quorumFailures = sum(plainStats.map((s) => s.stats.replication.quorumFailures));
    const redirected = sum([...plainStats, ...kvStats].map((s) => s.stats.requests.redirected));
    const clientRetries = pc.stats().router.retries + kc.stats().router.retries + gc.stats().router.retries;
    const clientFailed = pc.stats().router.failed + kc.stats().router.failed + gc.stats().router.failed;
    ctx.info("asks.replicationWrites", repWrites);
    // Evidence of batching: copies per request to a replica, answers per group-commit write.
    const copyRequests = sum(plainStats.map((s) => s.stats.replication.copyRequests));
    const commitWrites = sum(plainStats.map((s) => s.stats.replication.commitWrites));
    ctx.info(
      "asks.copiesPerRequest",
      (sum(plainStats.map((s) => s.stats.replication.copiesSent)) / Math.max(1, copyRequests)).toFixed(2),
    );
    ctx.info(
      "asks.answersPerCommitWrite",
      (sum(plainStats.map((s) => s.stats.replication.commitReleased)) / Math.max(1, commitWrites)).toFixed(2),
    );
    ctx.info("asks.quorumFailures", quorumFailures);
    ctx.info("asks.redirected", redirected);
    ctx.info("asks.clientRetries", clientRetries);
    ctx.info("asks.clientFailed", clientFailed);
    ctx.info("asks.loadAverageAtEnd", loadavg()[0]!.toFixed(2));

    ctx.table(
      `Remote asks/s and latency by replication, closed loop, ${plan.rounds} x ${plan.runMs} ms per cell`,
      rows,
      [
        `add(1) -> number from a Sharding.connect client in the bench process to ${plan.keys.toLocaleString("en-US")} counters`,
        `spread by the ring over ${NODES} node processes; keys taken round-robin, so no two asks in flight hit one entity.`,
        "replicas N: the primary sends the new state to the N-1 next owners and answers after the quorum",
        "(default: every live replica) acknowledged. KV: replicas 1, each write goes to a JetStream KV bucket",
        `(update at the last revision) before the answer, on ${NODES} other node processes on the same server.`,
        `Echo: msg.respond() in a child process, ${askBytes.length} B out, ${replyBytes.length} B back, no decoding. The ceiling publishes`,
        "with a reply subject under one wildcard reply subscription (as Keyhold's NatsTransport does);",
        "nc.request() is nats.js's own request, with a timer and a deferred per request.",
        `A replication message is ~${repBytes.length} B (the state plus its last 8 ask ids).`,
        "per s = median over rounds; x ceiling = median of each round's rate / that round's ceiling echo rate",
        "(run just before it); p50/p99 over every ask of every round. CPU us = CPU time per ask (user + system, all",
        "threads, from /proc at 10 ms ticks) in the bench process (client), the node processes of the case",
        "(or the echo child) and nats-server. NATS msgs/B = messages and payload bytes clients published to",
        "nats-server per ask (/varz in_msgs, in_bytes). Every process shares this machine's cores.",
        `Replication writes: ${repWrites.toLocaleString("en-US")}, quorum failures: ${quorumFailures}; asks redirected: ${redirected};`,
        `client retries: ${clientRetries}, failed asks: ${clientFailed}.`,
      ].join("\n"),
    );

    costModel(ctx, get, lat);
    groupCommitTargets(ctx, get);
  } finally {
    await plain?.close().catch(() => {});
    await kv?.close().catch(() => {});
    await noGc?.close().catch(() => {});
    raw?.close();
    await nc?.close().catch(() => {});
    await killAll([...plainNodes, ...kvNodes, ...noGcNodes]);
    if (echo) {
      echo.process.kill("SIGKILL");
      await echo.exited;
    }
  }
}

async function measure(
  op: KeyedOp,
  keys: readonly string[],
  concurrency: number,
  runMs: number,
  pids: readonly number[],
  server: NatsServer,
): Promise<Cell> {
  const cpu = () => ({
    client: ownCpuMicros(),
    serverSide: pids.reduce((s, pid) => s + cpuMicrosOf(pid), 0),
    nats: cpuMicrosOf(server.pid),
  });
  const v0 = await getVarz(server.monitorUrl);
  const c0 = cpu();
  const run = await closedLoop(op, keys, concurrency, runMs);
  const c1 = cpu();
  const v1 = await getVarz(server.monitorUrl);
  const per = (x: number) => x / run.completed;
  return {
    run,
    clientCpuUs: per(c1.client - c0.client),
    serverSideCpuUs: per(c1.serverSide - c0.serverSide),
    natsCpuUs: per(c1.nats - c0.nats),
    natsMsgs: per(v1.in_msgs - v0.in_msgs),
    natsBytes: per(v1.in_bytes - v0.in_bytes),
  };
}

/** Asks every key once, `concurrency` at a time: activates every entity. */
async function cover(op: KeyedOp, keys: readonly string[], concurrency = 256): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < keys.length) await op(keys[next++]!);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
