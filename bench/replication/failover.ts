// Failover time after SIGKILL: 3 node processes host replicas-3 counters that hold state; the
// node owning a set of keys is killed, and each of those keys is timed from the kill until a
// get() from a client answers again with its acknowledged value. With the default lease and a
// short one, beside when the client and the surviving nodes dropped the dead node and when the
// survivors finished taking its partitions.
import { loadavg } from "node:os";
import { Sharding } from "@keyhold/actors";
import { DEFAULT_HEARTBEAT_MS, DEFAULT_SKEW_MS, DEFAULT_TTL_MS, silentLogger } from "@keyhold/core";
import { NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import { type BenchContext, type Row, summarize } from "../harness.js";
import { Counter3, entities } from "./entities.js";
import { converged, killAll, spawnNodes } from "./processes.js";

const NODES = 3;
/**
 * Counters with state. About a third belong to the victim; each is polled from the kill on, and
 * while the client still routes to the dead node every poll retries every ≤100 ms, so this also
 * sets the extra load during a failover (about KEYS / 3 * 10 requests/s).
 */
const KEYS = 600;
/** How long the survivors' refills get to give a new node its copies before the keys are rewritten. */
const REFILL_GRACE_MS = 3_000;

interface Lease {
  readonly name: string;
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  readonly skewMs: number;
  readonly trials: number;
}

interface Trial {
  /** Per victim key: ms from the kill until a get() answered with the acknowledged value. */
  readonly keyMs: number[];
  /** When the client's ring dropped the victim, ms after the kill. */
  readonly clientDropMs: number;
  /** When the last survivor's ring dropped the victim, ms after the kill. */
  readonly nodesDropMs: number;
  /** When the last partition the survivors acquired after the kill was ready, ms after the kill. */
  readonly handoffsDoneMs: number;
  readonly partitionsTaken: number;
  /** Answers with a value other than the acknowledged one (a lost or doubled write). */
  readonly wrong: number;
  /** Asks that failed (deadline) and were asked again. */
  readonly failed: number;
  /** Victim keys that never answered correctly. */
  readonly unanswered: number;
}

export async function failoverTime(ctx: BenchContext): Promise<void> {
  // A default-lease failover waits out most of a 6 s TTL, so it gets fewer trials; quick mode
  // runs one short-lease trial only.
  // FAILOVER_SHORT_TRIALS / FAILOVER_DEFAULT_TRIALS override the trial counts (A/B pairs, issue 9).
  const env = (name: string, fallback: number) => {
    const v = process.env[name];
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback;
  };
  const leases: Lease[] = [
    {
      name: "short",
      heartbeatMs: 100,
      ttlMs: 300,
      skewMs: 300,
      trials: env("FAILOVER_SHORT_TRIALS", ctx.quick ? 1 : 3),
    },
    {
      name: "default",
      heartbeatMs: DEFAULT_HEARTBEAT_MS,
      ttlMs: DEFAULT_TTL_MS,
      skewMs: DEFAULT_SKEW_MS,
      trials: env("FAILOVER_DEFAULT_TRIALS", ctx.quick ? 0 : 2),
    },
  ];
  const keys = Array.from({ length: KEYS }, (_, i) => `acct-${100_000 + i}`);
  // Distinct values, so an answer from the wrong version or the wrong key cannot pass.
  const expected = new Map(keys.map((k, i) => [k, 1 + (i % 997)]));
  await using server = await NatsServer.start();
  const rows: Row[] = [];
  for (const lease of leases) {
    if (lease.trials === 0) continue;
    ctx.info(`failover.${lease.name}.loadAverageAtStart`, loadavg()[0]!.toFixed(2));
    const options = {
      servers: server.url,
      cluster: `bench-failover-${lease.name}-${process.pid}`,
      heartbeatMs: lease.heartbeatMs,
      ttlMs: lease.ttlMs,
      skewMs: lease.skewMs,
      idleMs: 0,
    };
    const nodes: ShardingProcess[] = [];
    let client: Sharding | undefined;
    try {
      ctx.log(`failover, ${lease.name} lease: starting ${NODES} node processes`);
      nodes.push(...(await spawnNodes(NODES, options)));
      client = await Sharding.connect({ ...options, entities, logger: silentLogger, askTimeoutMs: 30_000 });
      await converged(client, nodes);
      const c = client;
      await runAll(keys, 64, (k) => c.ask(Counter3, k, "add", [expected.get(k)!]));
      if (!(await holdEveryKey(nodes, KEYS, REFILL_GRACE_MS)))
        throw new Error("the keys did not get 3 copies when written");
      let refillMissed = 0;
      let lostOnJoin = 0;

      const trials: Trial[] = [];
      for (let t = 0; t < lease.trials; t++) {
        const victim = nodes.shift()!;
        const r = await trial(c, victim, nodes, expected, lease);
        trials.push(r);
        const s = summarize(r.keyMs);
        ctx.log(
          `${lease.name} #${t + 1}: ${s.n} keys answered again after median ${s.median} ms, max ${s.max} ms`,
        );
        rows.push(row(lease, `#${t + 1}`, [r]));
        if (t < lease.trials - 1) {
          // Back to 3 nodes and 3 copies of every key before the next kill. The survivors'
          // refills should give the new node its copies; when they do not (in time), the keys
          // are rewritten, which sends each to every replica.
          nodes.push(...(await spawnNodes(1, options)));
          await converged(c, nodes);
          if (!(await holdEveryKey(nodes, KEYS, REFILL_GRACE_MS))) refillMissed++;
          lostOnJoin += await rewriteAll(c, expected);
          if (!(await holdEveryKey(nodes, KEYS, REFILL_GRACE_MS)))
            throw new Error("the keys did not get back to 3 copies even after a rewrite");
        }
      }
      if (trials.length > 1) rows.push(row(lease, "all", trials));

      const all = summarize(trials.flatMap((r) => r.keyMs));
      const m = (f: (r: Trial) => number) => summarize(trials.map(f)).median;
      const sum = (f: (r: Trial) => number) => trials.reduce((a, r) => a + f(r), 0);
      const key = `failover.${lease.name}`;
      ctx.figure(`${key}.keyMedianMs`, all.median, "ms");
      ctx.figure(`${key}.keyMaxMs`, all.max, "ms");
      ctx.figure(`${key}.keyMinMs`, all.min, "ms");
      ctx.figure(`${key}.trialMaxMedianMs`, summarize(trials.map((r) => Math.max(...r.keyMs))).median, "ms");
      ctx.figure(
        `${key}.clientDropMedianMs`,
        m((r) => r.clientDropMs),
        "ms",
      );
      ctx.figure(
        `${key}.nodesDropMedianMs`,
        m((r) => r.nodesDropMs),
        "ms",
      );
      ctx.figure(
        `${key}.handoffsDoneMedianMs`,
        m((r) => r.handoffsDoneMs),
        "ms",
      );
      ctx.figure(`${key}.trials`, trials.length, "count");
      ctx.figure(`${key}.keys`, all.n, "count");
      ctx.figure(
        `${key}.wrongValues`,
        sum((r) => r.wrong),
        "count",
      );
      ctx.figure(
        `${key}.unanswered`,
        sum((r) => r.unanswered),
        "count",
      );
      ctx.figure(
        `${key}.failedAsks`,
        sum((r) => r.failed),
        "count",
      );
      ctx.figure(`${key}.valuesLostOnJoin`, lostOnJoin, "count");
      // Joins after which the survivors' refills alone had not given every node every key
      // within REFILL_GRACE_MS (a lower bound: the check counts copies, not which keys).
      ctx.figure(`${key}.refillMissedJoins`, refillMissed, "count");
      ctx.figure(`${key}.joins`, trials.length - 1, "count");
    } finally {
      await client?.close().catch(() => {});
      await killAll(nodes);
    }
  }
  ctx.table(
    `Failover after SIGKILL: time until each key of the killed node answers again (${NODES} nodes, replicas 3)`,
    rows,
    [
      `${KEYS} Counter entities (replicas 3, each holding a distinct acknowledged value) on ${NODES} node processes;`,
      "the oldest node is killed; its keys are those the client's ring places on it (about a third). From just",
      "before SIGKILL, one get() per key from a Sharding.connect client in the bench process, asked again until it",
      "answers with the acknowledged value: key ms = when it did (median and max over the keys). Until the",
      "client's ring drops the dead node, each ask retries (no responders) with backoff capped at 100 ms.",
      "client / nodes dropped = when the client's and the last survivor's ring dropped it (lease expiry);",
      "hand-offs done = when the last partition a survivor acquired after the kill was serving (pulled from",
      "the other survivor; the new owner was already a replica). wrong = answers other than the acknowledged",
      "value (lost writes). Between trials a fresh node joins; once the ring converged every key is rewritten",
      "(add 0, checked against its value) so it has 3 copies again whatever the refills did.",
      "Expected: key ms = a little over the lease's ttl - heartbeat .. ttl, plus up to 100 ms of client backoff.",
    ].join("\n"),
  );
}

function row(lease: Lease, label: string, trials: readonly Trial[]): Row {
  const keys = summarize(trials.flatMap((r) => r.keyMs));
  const m = (f: (r: Trial) => number) => summarize(trials.map(f)).median;
  const sum = (f: (r: Trial) => number) => trials.reduce((a, r) => a + f(r), 0);
  return {
    lease: `${lease.name} (${lease.heartbeatMs}/${lease.ttlMs}/${lease.skewMs} ms)`,
    trial: label,
    keys: keys.n,
    "key median ms": keys.median,
    "key max ms": keys.max,
    "client dropped ms": m((r) => r.clientDropMs),
    "nodes dropped ms": m((r) => r.nodesDropMs),
    "hand-offs done ms": m((r) => r.handoffsDoneMs),
    partitions: m((r) => r.partitionsTaken),
    wrong: sum((r) => r.wrong),
    unanswered: sum((r) => r.unanswered),
    "failed asks": sum((r) => r.failed),
  };
}

async function trial(
  client: Sharding,
  victim: ShardingProcess,
  survivors: readonly ShardingProcess[],
  expected: ReadonlyMap<string, number>,
  lease: Lease,
): Promise<Trial> {
  const victimKeys = [...expected.keys()].filter((k) => client.node.place(k) === victim.id);
  if (victimKeys.length === 0) throw new Error(`the client's ring places no key on ${victim.id}`);

  const watch = new AbortController();
  let clientDropAt: number | undefined;
  const watching = (async () => {
    for await (const e of client.node.events({ signal: watch.signal })) {
      if (e.type === "members" && e.left.includes(victim.id)) clientDropAt ??= Date.now();
    }
  })();
  const eventsFrom = survivors.map((s) => s.events.length);
  const handoffsFrom = (await Promise.all(survivors.map((s) => s.state()))).map((s) => s.handoffs.length);

  const t0 = Date.now();
  // Polls start once the process is gone, so no answer can come from the victim itself.
  await victim.kill("SIGKILL");
  const deadline = t0 + 2 * (lease.ttlMs + lease.skewMs) + 30_000;
  const keyMs: number[] = [];
  let wrong = 0;
  let failed = 0;
  let unanswered = 0;
  await Promise.all(
    victimKeys.map(async (k) => {
      while (Date.now() < deadline) {
        try {
          const v = await client.ask(Counter3, k, "get", [], { timeout: Math.max(1, deadline - Date.now()) });
          if (v === expected.get(k)) {
            keyMs.push(Date.now() - t0);
            return;
          }
          wrong++;
        } catch {
          failed++;
        }
      }
      unanswered++;
    }),
  );

  // FAILOVER_LOGS=1 (with KEYHOLD_CHILD_LOG=1, which makes the nodes log): the survivors' logs
  // when a key stayed unanswered, to see why its partition was not served.
  // FAILOVER_LOGS=fences: every trial, the survivors' lines about fences and pre-fence records.
  if (process.env.FAILOVER_LOGS === "fences") {
    const fence = /fencing itself|unfenced|too short for a take-over|proves nothing|waits, unserved/;
    for (const s of survivors)
      for (const l of s.logs()) if (fence.test(l)) process.stderr.write(`fence ${s.id} ${l}\n`);
  }
  if (unanswered > 0 && process.env.FAILOVER_LOGS === "1") {
    process.stderr.write(`${unanswered} keys unanswered; the survivors' logs:\n`);
    for (const s of survivors) process.stderr.write(`--- ${s.id}\n${s.logs().join("\n")}\n`);
  }
  // The survivors report their membership events over IPC as they happen; give the last a moment.
  await waitFor(() => survivors.every((s, i) => dropAt(s, eventsFrom[i]!, victim.id) !== undefined), {
    timeout: 5_000,
    message: `a survivor never reported dropping ${victim.id}`,
  });
  const nodesDropMs = Math.max(...survivors.map((s, i) => dropAt(s, eventsFrom[i]!, victim.id)! - t0));
  const after = await Promise.all(survivors.map((s) => s.state()));
  const handoffs = after.flatMap((s, i) => s.handoffs.slice(handoffsFrom[i]));
  watch.abort();
  await watching;
  return {
    keyMs,
    clientDropMs: clientDropAt === undefined ? Number.NaN : clientDropAt - t0,
    nodesDropMs,
    handoffsDoneMs: handoffs.length > 0 ? Math.max(...handoffs.map((h) => h.at)) - t0 : Number.NaN,
    partitionsTaken: handoffs.length,
    wrong,
    failed,
    unanswered,
  };
}

function dropAt(node: ShardingProcess, from: number, id: string): number | undefined {
  return node.events.slice(from).find((e) => e.event.type === "members" && e.event.left.includes(id))?.at;
}

/**
 * Whether, within `timeout`, every node holds every key as primary or copy (with replicas 3 on
 * 3 nodes, each node is an owner of every key). A necessary condition, not a sufficient one: a
 * node may also hold a stale copy of a key it is the primary of, which counts twice.
 */
async function holdEveryKey(
  nodes: readonly ShardingProcess[],
  keys: number,
  timeout: number,
): Promise<boolean> {
  try {
    await waitFor(
      async () =>
        (await Promise.all(nodes.map((n) => n.state()))).every(
          (s) => s.stats.replication.copies + s.stats.host.known >= keys,
        ),
      { timeout, interval: 50 },
    );
    return true;
  } catch {
    return false;
  }
}

/**
 * Adds 0 to every key: each write reaches every replica of the key (quorum "all"), so every key
 * is back to 3 copies. Returns how many keys answered with a value other than the acknowledged.
 */
async function rewriteAll(client: Sharding, expected: ReadonlyMap<string, number>): Promise<number> {
  let lost = 0;
  await runAll([...expected.keys()], 64, async (k) => {
    if ((await client.ask(Counter3, k, "add", [0])) !== expected.get(k)) lost++;
  });
  return lost;
}

async function runAll(
  keys: readonly string[],
  concurrency: number,
  op: (k: string) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < keys.length) await op(keys[next++]!);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
