// What both replication benchmarks need around their processes: starting a set of Sharding node
// processes that host bench/replication/entities.ts, waiting until a ring has settled, and reading
// the CPU time of any process and the nats-server message counters, to show where time goes.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Sharding } from "@keyhold/actors";
import { ShardingProcess, type ShardingProcessOptions, waitFor } from "@keyhold/testing";

export const ENTITIES = fileURLToPath(new URL("./entities.ts", import.meta.url));

/**
 * Starts `count` node processes at once. If one fails to start, the others are killed before
 * the error is thrown, so no caller ever holds half a cluster it does not know of.
 */
export async function spawnNodes(count: number, options: ShardingProcessOptions): Promise<ShardingProcess[]> {
  const started = await Promise.allSettled(
    Array.from({ length: count }, () => ShardingProcess.spawn(options, ENTITIES)),
  );
  const nodes = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) {
    await killAll(nodes);
    throw failed.reason;
  }
  return nodes;
}

export async function killAll(nodes: readonly ShardingProcess[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.kill("SIGKILL")));
}

/** Waits until the client and every node see exactly these nodes as the members. */
export async function converged(
  client: Sharding,
  nodes: readonly ShardingProcess[],
  timeout = 30_000,
): Promise<void> {
  const ids = nodes
    .map((n) => n.id)
    .sort()
    .join();
  await waitFor(
    async () =>
      [...client.node.members()].sort().join() === ids &&
      (await Promise.all(nodes.map((n) => n.state()))).every((s) => [...s.members].sort().join() === ids),
    { timeout, interval: 50, message: `the ring did not converge on ${nodes.length} members` },
  );
}

// Linux reports per-process CPU time in clock ticks (USER_HZ, nearly always 100).
const TICK_US = (() => {
  try {
    return 1e6 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  } catch {
    return 1e4;
  }
})();

/** CPU time (user + system, all threads) a process has used so far, µs; NaN where /proc is missing. */
export function cpuMicrosOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "(comm) ": state is the first; utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return Number.NaN;
  }
}

export function ownCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

export interface Varz {
  readonly in_msgs: number;
  readonly in_bytes: number;
  readonly version: string;
}

/** nats-server's /varz counters (messages and payload bytes clients published). */
export async function getVarz(monitorUrl: string): Promise<Varz> {
  const res = await fetch(`${monitorUrl}/varz`);
  if (!res.ok) throw new Error(`GET ${monitorUrl}/varz: HTTP ${res.status}`);
  return (await res.json()) as Varz;
}
