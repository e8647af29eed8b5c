// Fencing tokens (issue 9): what an acquisition costs in KV operations and time, and the ask
// rate of a replicated entity with tokens against without.
// - Acquisition: one node owns every partition, a second joins (half the partitions move to
//   it) and leaves again (they move back); KV operations per moved partition from the nodes'
//   epoch counters, and the median hand-off time, with "jetstream" epochs and with "local"
//   stamps (no KV) on the same server.
// - Ask rate: remote asks to a `replicas: 3` counter on three hosts. "Without" switches the
//   token off on the hot path for this benchmark only (copies carry no epoch and replicas keep
//   no floor), so the difference is what the token costs per write; rounds alternate.
import { Entity, Sharding, type ShardingOptions } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import { Replicator } from "../../packages/actors/src/replication.js";
import { decodeRequest, encode } from "../../packages/actors/src/wire.js";
import type { BenchContext, BenchModule, Row } from "../harness.js";
import { entities } from "./entities.js";
import { closedLoop } from "./load.js";

class RCounter extends Entity<{ n: number }> {
  static readonly type = "rcounter";
  static readonly replicas = 3;
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
}

const LEASE = { heartbeatMs: 500, ttlMs: 2000, skewMs: 1000 } as const;

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function acquisitionCost(ctx: BenchContext, url: string): Promise<void> {
  const rows: Row[] = [];
  for (const mode of ["jetstream", "local"] as const) {
    const common: ShardingOptions = {
      servers: url,
      cluster: `bench-ep-${mode}-${process.pid}`,
      entities,
      logger: silentLogger,
      epochs: mode,
      ...LEASE,
    };
    const a = await Sharding.start({ ...common, nodeId: "a" });
    const ringSize = a.node.config.ringSize;
    await waitFor(() => a.handoffs().length >= ringSize, { timeout: 30_000 });
    const b = await Sharding.start({ ...common, nodeId: "b" });
    await waitFor(
      () => b.node.ownedPartitions().length > 0 && b.handoffs().length >= b.node.ownedPartitions().length,
      {
        timeout: 30_000,
      },
    );
    const moved = b.node.ownedPartitions().length;
    const bEpochs = b.stats().epochs;
    const aBefore = a.stats().epochs;
    const handoffsBefore = a.handoffs().length;
    const joinMs = b.handoffs().map((h) => h.ms);
    await b.close();
    await waitFor(() => a.handoffs().length >= handoffsBefore + moved, { timeout: 30_000 });
    const aAfter = a.stats().epochs;
    const leaveMs = a
      .handoffs()
      .slice(-moved)
      .map((h) => h.ms);
    const ops = bEpochs.kvOps + (aAfter.kvOps - aBefore.kvOps);
    const conflicts = bEpochs.conflicts + (aAfter.conflicts - aBefore.conflicts);
    const perPartition = mode === "jetstream" ? ops / (2 * moved) : 0;
    rows.push({
      epochs: mode,
      "partitions moved (join + leave)": 2 * moved,
      "KV ops": mode === "jetstream" ? ops : 0,
      "KV ops / moved partition": Number(perPartition.toFixed(2)),
      conflicts: mode === "jetstream" ? conflicts : 0,
      "hand-off ms (median, join)": Number(median(joinMs).toFixed(1)),
      "hand-off ms (median, leave)": Number(median(leaveMs).toFixed(1)),
    });
    ctx.figure(`acquire.${mode}.kvOpsPerPartition`, perPartition, "ops");
    ctx.figure(`acquire.${mode}.handoffMsJoin`, median(joinMs), "ms");
    ctx.figure(`acquire.${mode}.handoffMsLeave`, median(leaveMs), "ms");
    await a.close();
  }
  ctx.table(
    "acquisition cost: one node joins a node owning every partition, then leaves",
    rows,
    "KV ops: conditional epoch writes, plus a leader read when the taker knows no epoch of the partition (a joiner) or guessed an old one.",
  );
}

async function askRate(ctx: BenchContext, url: string): Promise<void> {
  const plan = ctx.quick
    ? { rounds: 2, runMs: 300, warmupMs: 200 }
    : { rounds: 10, runMs: 800, warmupMs: 800 };
  const common: ShardingOptions = {
    servers: url,
    cluster: `bench-ep-rate-${process.pid}`,
    entities: [RCounter],
    logger: silentLogger,
    epochs: "jetstream",
    idleMs: 0,
    ...LEASE,
  };
  const hosts: Sharding[] = [];
  for (const id of ["h0", "h1", "h2"]) hosts.push(await Sharding.start({ ...common, nodeId: id }));
  const client = await Sharding.connect(common);
  const keys = Array.from({ length: 4000 }, (_, i) => `acct-${i}`);
  const proto = Replicator.prototype as unknown as {
    message: (p: number, recs: readonly unknown[]) => Uint8Array;
    receive: (p: number, recs: readonly unknown[], from: string, ep?: number) => unknown;
    floor: (p: number) => number;
  };
  const real = { message: proto.message, receive: proto.receive };
  // "Without": copies leave with no `ep` field, and replicas judge them at their current floor,
  // so the epoch check always passes (its one Map lookup per copy stays in both variants).
  const without = {
    message(this: { floor: (p: number) => number }, p: number, recs: readonly unknown[]) {
      return encode({ v: 1, k: "rep", p, from: nodeIdOf(this, real.message), recs } as never);
    },
    receive(this: { floor: (p: number) => number }, p: number, recs: readonly unknown[], from: string) {
      return real.receive.call(this, p, recs, from, this.floor(p));
    },
  };
  const setMode = (m: "with" | "without") => Object.assign(proto, m === "with" ? real : without);
  try {
    await waitFor(() => client.node.members().length === 3, { timeout: 15_000 });
    await waitFor(() => hosts.every((h) => h.stats().epochs.taken >= h.node.ownedPartitions().length), {
      timeout: 30_000,
    });
    const op = (k: string) => client.ask(RCounter, k, "add", [1]);
    await closedLoop(op, keys, 64, plan.warmupMs);
    const pairs: [number, number][] = [];
    for (let r = 0; r < plan.rounds; r++) {
      const pair: [number, number] = [0, 0];
      for (const m of r % 2 === 0 ? (["with", "without"] as const) : (["without", "with"] as const)) {
        setMode(m);
        const run = await closedLoop(op, keys, 64, plan.runMs);
        pair[m === "with" ? 0 : 1] = run.rate;
      }
      pairs.push(pair);
    }
    setMode("with");
    // A refused copy would give a partition up and skew the "with" rounds: there must be none.
    const refused = hosts.reduce((n, h) => n + h.stats().replication.copiesRefused, 0);
    const yielded = hosts.reduce((n, h) => n + h.stats().handoff.partitionsYielded, 0);
    const w = median(pairs.map((p) => p[0]));
    const wo = median(pairs.map((p) => p[1]));
    const slowdown = median(pairs.map((p) => 1 - p[0] / p[1]));
    ctx.figure("asks.replicated.rateWith", w, "asks/s");
    ctx.figure("asks.replicated.rateWithout", wo, "asks/s");
    ctx.figure("asks.replicated.slowdown", 100 * slowdown, "%");
    ctx.table(
      `ask rate, remote asks to a replicas: 3 counter on 3 hosts, concurrency 64, medians of ${plan.rounds} paired rounds of ${plan.runMs} ms`,
      [
        {
          "asks/s with tokens": Math.round(w),
          "asks/s without": Math.round(wo),
          "slower by": `${(100 * slowdown).toFixed(2)}%`,
          "copies refused": refused,
          "partitions given up": yielded,
        },
      ],
      "All processes share one machine; negative = noise.",
    );
  } finally {
    setMode("with");
    await client.close();
    for (const h of hosts) await h.close();
  }
}

/** The sender id a Replicator puts in its copies (private: decoded once from one of its own). */
const ids = new WeakMap<object, string>();
function nodeIdOf(r: object, real: (p: number, recs: readonly unknown[]) => Uint8Array): string {
  let id = ids.get(r);
  if (id === undefined) {
    const m = decodeRequest(real.call(r, 0, []));
    id = "from" in m ? String(m.from) : "";
    ids.set(r, id);
  }
  return id;
}

export const bench: BenchModule = {
  name: "epochs",
  about: "fencing tokens: KV operations and time per moved partition, ask rate with tokens against without",
  async run(ctx) {
    await using server = await NatsServer.start({ jetstream: true });
    await acquisitionCost(ctx, server.url);
    await askRate(ctx, server.url);
  },
};
