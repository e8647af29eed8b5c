// The cases of the replicated-ask benchmark, what one measured cell holds, and the cost model
// that sets each case beside replicas 1 (asks.ts measures, this explains).

import type { LoadRun } from "../actors/load.js";
import { type BenchContext, type Row, summarize } from "../harness.js";

export type Case =
  | "echo"
  | "echoRequest"
  | "replicas1"
  | "replicas2"
  | "replicas3"
  | "kv"
  | "hot3"
  | "hot3NoGc";
export const CASES: readonly Case[] = [
  "echo",
  "echoRequest",
  "replicas1",
  "replicas2",
  "replicas3",
  "kv",
  "hot3",
  "hot3NoGc",
];
export const LABEL: Record<Case, string> = {
  echo: "raw NATS echo (ceiling)",
  echoRequest: "raw NATS echo, nc.request()",
  replicas1: "replicas 1",
  replicas2: "replicas 2",
  replicas3: "replicas 3",
  kv: "replicas 1 + NATS KV store",
  hot3: "one hot key, replicas 3",
  hot3NoGc: "one hot key, replicas 3, groupCommit off",
};

/** Per cell: the load run and what it cost each process, per ask. */
export interface Cell {
  readonly run: LoadRun;
  readonly clientCpuUs: number;
  readonly serverSideCpuUs: number;
  readonly natsCpuUs: number;
  readonly natsMsgs: number;
  readonly natsBytes: number;
}

/**
 * Messages a node process sends or receives per ask: the ask and its reply; per replica, the
 * copy out and in and the acknowledgement out and in; for the KV store, the write and its ack.
 */
const NODE_MESSAGES: Partial<Record<Case, number>> = { replicas1: 2, replicas2: 6, replicas3: 10, kv: 4 };

/**
 * Where the time of replicas N goes compared with replicas 1. Per write, the primary makes one
 * request per replica (in parallel) and the entity's next message waits for the acknowledgements.
 * So one ask alone should cost about one more NATS round trip (an echo) for any N > 1; with many
 * asks in flight the machine's CPU is the limit, and the cost grows with the messages handled.
 */
export function costModel(
  ctx: BenchContext,
  get: (name: Case, conc: number) => Cell[],
  lat: Map<string, { p50: number; p99: number }>,
): void {
  const med = (name: Case, conc: number, f: (c: Cell) => number) => summarize(get(name, conc).map(f)).median;
  const l = (name: Case) => lat.get(`${name}@1`)!.p50;
  const extraLatency = l("replicas3") - l("replicas1");
  const echoRtt = l("echo");
  const nodeCpu = (name: Case) => med(name, 64, (c) => c.serverSideCpuUs);
  const natsCpu = (name: Case) => med(name, 64, (c) => c.natsCpuUs);
  const msgs = (name: Case) => med(name, 64, (c) => c.natsMsgs);
  const rate = (name: Case) => med(name, 64, (c) => c.run.rate);
  const perMessage = (name: Case) => nodeCpu(name) / NODE_MESSAGES[name]!;
  ctx.figure("cost.replicas3MinusReplicas1.p50Ms[1]", extraLatency, "ms");
  ctx.figure("cost.replicas3MinusReplicas1.echoRoundTrips[1]", extraLatency / echoRtt, "x");
  ctx.figure("cost.replicas3OverReplicas1.nodesCpu[64]", nodeCpu("replicas3") / nodeCpu("replicas1"), "x");
  ctx.figure("cost.replicas3OverReplicas1.natsMsgs[64]", msgs("replicas3") / msgs("replicas1"), "x");
  ctx.figure("cost.replicas3OverReplicas1.rate[64]", rate("replicas3") / rate("replicas1"), "x");
  const rows: Row[] = (["replicas1", "replicas2", "replicas3", "kv"] as const).map((name) => {
    ctx.figure(`cost.${name}.nodeCpuUsPerMessage[64]`, perMessage(name), "us");
    return {
      case: LABEL[name],
      "p50 c=1 ms": l(name),
      "over replicas 1 ms": l(name) - l("replicas1"),
      "= echo RTTs": (l(name) - l("replicas1")) / echoRtt,
      "NATS msgs/ask": msgs(name),
      "node msgs/ask": NODE_MESSAGES[name]!,
      "nodes CPU us/ask": nodeCpu(name),
      "us/node msg": perMessage(name),
      "nats CPU us/ask": natsCpu(name),
      "rate c=64 vs replicas 1": rate(name) / rate("replicas1"),
    };
  });
  ctx.table(
    "Where the time goes: each case beside replicas 1 (CPU and messages at concurrency 64)",
    rows,
    [
      "Cost model: a write to a replicas-N entity makes N-1 requests (in parallel) from the primary, and the",
      "entity's next message waits for them. One ask alone should so take about one more NATS round trip",
      `(ceiling echo p50 at c=1: ${echoRtt.toFixed(3)} ms) for any N > 1: "= echo RTTs" is the extra p50 over that.`,
      "With 64 in flight the CPU of this machine is the limit: a node handles 2 + 4(N-1) messages per ask",
      "(ask, reply; per replica the copy out and in, the ack out and in; KV: the write and its ack), and",
      '"us/node msg" = nodes CPU per ask / node messages per ask: if it holds still, the cost is per message.',
    ].join("\n"),
  );
}
