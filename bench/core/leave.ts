// How long until every peer drops a member that leaves gracefully (close()) or dies (kill -9),
// for the default lease and a short one: 3 ShardNode processes on a bench-owned nats-server.
import { DEFAULT_HEARTBEAT_MS, DEFAULT_TTL_MS } from "@keyhold/core";
import { NatsServer, NodeProcess, type TimedEvent, waitFor } from "@keyhold/testing";
import { type BenchContext, type Row, summarize } from "../harness.js";

interface Lease {
  readonly name: string;
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  /** Trials per way of leaving. */
  readonly trials: number;
}

type Exit = "close" | "kill";

const CLUSTER_SIZE = 3;

export async function leaveLatency(ctx: BenchContext): Promise<void> {
  // A default-lease kill waits out most of a 6 s TTL, so it gets fewer trials.
  const leases: Lease[] = [
    { name: "default", heartbeatMs: DEFAULT_HEARTBEAT_MS, ttlMs: DEFAULT_TTL_MS, trials: ctx.quick ? 1 : 3 },
    { name: "short", heartbeatMs: 100, ttlMs: 300, trials: ctx.quick ? 2 : 5 },
  ];
  await using server = await NatsServer.start();
  const rows: Row[] = [];
  for (const lease of leases) {
    const nodes: NodeProcess[] = [];
    const spawn = () =>
      NodeProcess.spawn({
        servers: server.url,
        cluster: `bench-leave-${lease.name}-${process.pid}`,
        heartbeatMs: lease.heartbeatMs,
        ttlMs: lease.ttlMs,
      });
    try {
      ctx.log(`leave/kill latency, ${lease.name} lease: starting ${CLUSTER_SIZE} node processes`);
      nodes.push(...(await Promise.all(Array.from({ length: CLUSTER_SIZE }, spawn))));
      for (const exit of ["close", "kill"] as const) {
        const drops: number[] = [];
        const closeReturns: number[] = [];
        for (let t = 0; t < lease.trials; t++) {
          await converged(nodes, lease);
          const victim = nodes.shift()!;
          const r = await trial(victim, nodes, exit, lease);
          drops.push(r.dropMs);
          if (r.closeReturnedMs !== undefined) closeReturns.push(r.closeReturnedMs);
          ctx.log(`${lease.name} ${exit} #${t + 1}: peers dropped it after ${r.dropMs} ms`);
          // Keep the cluster at full size for the next trial.
          if (t < lease.trials - 1 || exit === "close") nodes.push(await spawn());
        }
        const s = summarize(drops);
        const key = `leave.${exit}.${lease.name}`;
        ctx.figure(`${key}.medianMs`, s.median, "ms");
        ctx.figure(`${key}.maxMs`, s.max, "ms");
        ctx.figure(`${key}.minMs`, s.min, "ms");
        ctx.figure(`${key}.trials`, s.n, "count");
        const returned = summarize(closeReturns);
        if (returned.n > 0) ctx.figure(`${key}.closeReturnedMedianMs`, returned.median, "ms");
        rows.push({
          lease: `${lease.name} (${lease.heartbeatMs}/${lease.ttlMs} ms)`,
          exit: exit === "close" ? "close()" : "kill -9",
          trials: s.n,
          "median ms": s.median,
          "min ms": s.min,
          "max ms": s.max,
          expected:
            exit === "close" ? "< 1 heartbeat" : `${lease.ttlMs - lease.heartbeatMs}..${lease.ttlMs} ms`,
          "close() returned ms": returned.n > 0 ? returned.median : "-",
        });
      }
    } finally {
      await Promise.all(nodes.map((n) => n.kill()));
    }
  }
  ctx.table(
    "Time until every peer has dropped the member (max over the 2 peers, per trial)",
    rows,
    "close(): from the parent's Date.now() just before asking the child to close (includes the IPC hop) to the\n" +
      "`members` event with the node in `left`, timed in each peer process. kill -9: from just before SIGKILL.\n" +
      "A killed member's lease runs out ttl after its last heartbeat, which came 0..heartbeat before the kill (more\n" +
      "when a loaded machine fires its heartbeat timer late, so kill -9 can come in under ttl - heartbeat).",
  );
}

interface TrialResult {
  readonly dropMs: number;
  readonly closeReturnedMs: number | undefined;
}

async function trial(
  victim: NodeProcess,
  peers: readonly NodeProcess[],
  exit: Exit,
  lease: Lease,
): Promise<TrialResult> {
  const from = peers.map((p) => p.events.length);
  const t0 = Date.now();
  let closeReturnedMs: number | undefined;
  if (exit === "close") closeReturnedMs = (await victim.close()) - t0;
  else await victim.kill("SIGKILL");
  const dropAt = (p: NodeProcess, i: number): number | undefined =>
    p.events
      .slice(from[i])
      .find((e: TimedEvent) => e.event.type === "members" && e.event.left.includes(victim.id))?.at;
  await waitFor(() => peers.every((p, i) => dropAt(p, i) !== undefined), {
    timeout: 2 * lease.ttlMs + 10_000,
    message: `peers did not drop ${victim.id} after ${exit}`,
  });
  const dropMs = Math.max(...peers.map((p, i) => dropAt(p, i)! - t0));
  return { dropMs, closeReturnedMs };
}

/** Waits until every node's latest member list holds exactly the given nodes. */
async function converged(nodes: readonly NodeProcess[], lease: Lease): Promise<void> {
  const ids = nodes.map((n) => n.id).sort();
  const latest = (n: NodeProcess): readonly string[] => {
    for (let i = n.events.length - 1; i >= 0; i--) {
      const e = n.events[i]!.event;
      if (e.type === "members") return e.members;
    }
    return [];
  };
  await waitFor(() => nodes.every((n) => latest(n).join() === ids.join()), {
    timeout: 2 * lease.ttlMs + 10_000,
    message: `nodes did not converge on ${ids.join(", ")}`,
  });
}
