// Failover time after a fault of the owner (issue 8): 3 node processes on a real nats-server host
// counters; the oldest node is SIGKILLed or SIGSTOPped, and each key the client's ring places on
// it is timed from the fault until an add(1) to it, asked after the fault, is acknowledged. The
// victim cannot answer after the fault (it is gone, or stopped until it is killed), so every
// such acknowledgement comes from the key's new owner. One row per case: a lease (node options)
// and a fault; a later lease mode (`leases: "jetstream"`) is one more entry in CASES.
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { type EntityClass, Sharding } from "@keyhold/actors";
import { DEFAULT_HEARTBEAT_MS, DEFAULT_SKEW_MS, DEFAULT_TTL_MS, silentLogger } from "@keyhold/core";
import { NatsServer, type ShardingProcess, type ShardingProcessOptions, waitFor } from "@keyhold/testing";
import { type BenchContext, type Row, summarize } from "../harness.js";
import { Counter1, Counter3 } from "../replication/entities.js";
import { converged, killAll, spawnNodes } from "../replication/processes.js";

const NODES = 3;
/** Counters; about a third belong to the victim, each written in a loop from the fault on. */
const KEYS = 300;
/**
 * The client's per-attempt deadline. A stopped owner keeps its subscriptions, so an ask sent
 * to it waits this long before it is retried (a killed one answers "no responders" at once):
 * it bounds the resolution of the SIGSTOP figure, not the take-over.
 */
const ATTEMPT_TIMEOUT_MS = 250;

type Fault = "SIGKILL" | "SIGSTOP";

/** The options that decide how fast a take-over is: passed to every node and to the client. */
interface LeaseCase {
  readonly name: string;
  readonly node: Partial<ShardingProcessOptions> & {
    readonly heartbeatMs: number;
    readonly ttlMs: number;
    readonly skewMs: number;
  };
  readonly trials: { readonly full: number; readonly quick: number };
}

const CASES: readonly LeaseCase[] = [
  {
    name: "default",
    node: { heartbeatMs: DEFAULT_HEARTBEAT_MS, ttlMs: DEFAULT_TTL_MS, skewMs: DEFAULT_SKEW_MS },
    trials: { full: 3, quick: 0 },
  },
  { name: "short", node: { heartbeatMs: 200, ttlMs: 1000, skewMs: 500 }, trials: { full: 5, quick: 1 } },
];
const FAULTS: readonly Fault[] = ["SIGKILL", "SIGSTOP"];
/** The entity written: replicated (the new owner holds a copy) and plain (it starts afresh). */
const TYPES: readonly EntityClass[] = [Counter3, Counter1];

interface Trial {
  /** Per victim key: ms from the fault until an add asked after it was acknowledged. */
  readonly keyMs: number[];
  /** When the client's ring dropped the victim, ms after the fault. */
  readonly clientDropMs: number;
  /** Asks that failed (deadline) and were asked again. */
  readonly failed: number;
  /** Victim keys no write reached within the trial's deadline. */
  readonly unanswered: number;
}

export async function failoverAfterFault(ctx: BenchContext): Promise<void> {
  const keys = Array.from({ length: KEYS }, (_, i) => `acct-${200_000 + i}`);
  await using server = await NatsServer.start();
  const rows: Row[] = [];
  for (const lease of CASES) {
    const count = ctx.quick ? lease.trials.quick : lease.trials.full;
    if (count === 0) continue;
    for (const type of TYPES) {
      const options: ShardingProcessOptions = {
        servers: server.url,
        cluster: `bench-fo-${lease.name}-${type.type}-${process.pid}`,
        idleMs: 0,
        ...lease.node,
      };
      ctx.info(`failover.${lease.name}.${type.type}.loadAverageAtStart`, loadavg()[0]!.toFixed(2));
      ctx.log(`${lease.name} lease, ${type.type}: starting ${NODES} node processes`);
      const nodes = await spawnNodes(NODES, options);
      let client: Sharding | undefined;
      try {
        client = await Sharding.connect({
          ...options,
          entities: TYPES,
          logger: silentLogger,
          askTimeoutMs: 60_000,
          attemptTimeoutMs: ATTEMPT_TIMEOUT_MS,
        });
        const c = client;
        await settle(c, nodes, type, keys);
        for (const fault of FAULTS) {
          const trials: Trial[] = [];
          for (let t = 0; t < count; t++) {
            const victim = nodes.shift()!;
            const r = await trial(c, victim, type, keys, fault, lease);
            trials.push(r);
            const s = summarize(r.keyMs);
            ctx.log(
              `${lease.name} ${type.type} ${fault} #${t + 1}: ${s.n} keys written again, first ${Math.round(s.min)} ms, median ${Math.round(s.median)} ms, last ${Math.round(s.max)} ms`,
            );
            // Back to NODES members, every key written through them, before the next fault.
            nodes.push(...(await spawnNodes(1, options)));
            await settle(c, nodes, type, keys);
          }
          const row = summarizeTrials(lease, type, fault, trials);
          rows.push(row.row);
          const base = `failover.${lease.name}.${type.type}.${fault}`;
          for (const [name, value] of Object.entries(row.figures)) ctx.figure(`${base}.${name}`, value, "ms");
          ctx.figure(`${base}.trials`, trials.length, "count");
          ctx.figure(
            `${base}.unanswered`,
            trials.reduce((a, r) => a + r.unanswered, 0),
            "count",
          );
        }
      } finally {
        await client?.close().catch(() => {});
        await killAll(nodes);
      }
    }
  }
  ctx.table(
    `Failover: ms from the fault of an owner to the first write its keys' new owner acknowledges (${NODES} node processes)`,
    rows,
    [
      `${KEYS} counters on ${NODES} node processes, one nats-server; the oldest node is the victim, its keys the`,
      "ones the client's ring places on it (about a third). From the fault on, one add(1) at a time per victim",
      "key from a Sharding.connect client in the bench process, asked again on failure; key ms = when the first",
      "add asked after the fault was acknowledged. Per trial: first key, median key, last key; the columns give",
      "the median over trials and, for the last key, also the max. client dropped = when the client's ring",
      `dropped the victim. attemptTimeoutMs ${ATTEMPT_TIMEOUT_MS} on the client: a stopped owner still holds its`,
      "subscriptions, so asks to it wait that long before they are retried; a killed one answers no-responders.",
      "Expected: a little over ttl (peers take over ttlMs after the last heartbeat they received), plus the",
      "hand-off of the victim's partitions (replicas 3: the survivors hold copies; replicas 1: fresh state).",
    ].join("\n"),
  );
}

/** Waits for the ring to converge on `nodes`, then writes every key once (activations, copies). */
async function settle(
  client: Sharding,
  nodes: readonly ShardingProcess[],
  type: EntityClass,
  keys: readonly string[],
): Promise<void> {
  await converged(client, nodes);
  let next = 0;
  const worker = async () => {
    while (next < keys.length) await client.ask(type, keys[next++]!, "add", [0]);
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

async function trial(
  client: Sharding,
  victim: ShardingProcess,
  type: EntityClass,
  keys: readonly string[],
  fault: Fault,
  lease: LeaseCase,
): Promise<Trial> {
  const victimKeys = keys.filter((k) => client.node.place(k) === victim.id);
  if (victimKeys.length === 0) throw new Error(`the client's ring places no key on ${victim.id}`);
  const watch = new AbortController();
  let clientDropAt: number | undefined;
  const watching = (async () => {
    for await (const e of client.node.events({ signal: watch.signal }))
      if (e.type === "members" && e.left.includes(victim.id)) clientDropAt ??= performance.now();
  })();

  const t0 = performance.now();
  if (fault === "SIGKILL") await victim.kill("SIGKILL");
  else {
    victim.pause();
    // Writes start once the process is stopped, so none of their answers can come from it.
    await waitFor(() => processState(victim.pid) === "T", { timeout: 5_000, interval: 1 });
  }
  const deadline = t0 + 3 * (lease.node.ttlMs + lease.node.skewMs) + 30_000;
  const keyMs: number[] = [];
  let failed = 0;
  let unanswered = 0;
  await Promise.all(
    victimKeys.map(async (k) => {
      while (performance.now() < deadline) {
        try {
          await client.ask(type, k, "add", [1], { timeout: Math.max(1, deadline - performance.now()) });
          keyMs.push(performance.now() - t0);
          return;
        } catch {
          failed++;
        }
      }
      unanswered++;
    }),
  );
  await waitFor(() => clientDropAt !== undefined, { timeout: 5_000 }).catch(() => {});
  watch.abort();
  await watching;
  // A stopped victim never runs again: it would rejoin with a lapsed lease, a test's business.
  if (fault === "SIGSTOP") await victim.kill("SIGKILL");
  return {
    keyMs,
    clientDropMs: clientDropAt === undefined ? Number.NaN : clientDropAt - t0,
    failed,
    unanswered,
  };
}

function summarizeTrials(
  lease: LeaseCase,
  type: EntityClass,
  fault: Fault,
  trials: readonly Trial[],
): { row: Row; figures: Record<string, number> } {
  const over = (f: (r: Trial) => number) => summarize(trials.map(f));
  const first = over((r) => Math.min(...r.keyMs));
  const mid = over((r) => summarize(r.keyMs).median);
  const last = over((r) => Math.max(...r.keyMs));
  const drop = over((r) => r.clientDropMs);
  const { heartbeatMs, ttlMs, skewMs } = lease.node;
  return {
    row: {
      lease: `${lease.name} (${heartbeatMs}/${ttlMs}/${skewMs})`,
      entity: `${type.type} (replicas ${type.replicas ?? 1})`,
      fault,
      trials: trials.length,
      keys: Math.round(summarize(trials.map((r) => r.keyMs.length)).median),
      "first key ms": Math.round(first.median),
      "median key ms": Math.round(mid.median),
      "last key ms": Math.round(last.median),
      "last key max ms": Math.round(last.max),
      "client dropped ms": Math.round(drop.median),
      "failed asks": trials.reduce((a, r) => a + r.failed, 0),
      unanswered: trials.reduce((a, r) => a + r.unanswered, 0),
    },
    figures: {
      firstKeyMedianMs: first.median,
      keyMedianMs: mid.median,
      lastKeyMedianMs: last.median,
      lastKeyMaxMs: last.max,
      clientDropMedianMs: drop.median,
    },
  };
}

/** The state letter of a Linux process ("T" when stopped); "" where /proc is missing. */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "";
  }
}
