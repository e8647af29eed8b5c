// The NATS-partition safety tests' harness: a 3-server JetStream cluster whose routes run
// through fault proxies, the heartbeat stream made first (so the test knows which server leads
// it), 5 node processes in `leases: "jetstream"` mode (2 on the server that will be cut off),
// one client on each side, and the verdicts, each asserted 0 (issue 9): keys acknowledged by two
// nodes at overlapping times, acknowledged writes lost (by op id, client- and node-side), and
// register keys whose history is not linearizable.

import type { Sharding } from "@keyhold/actors";
import { heartbeatStreamName, membershipSubjects, NatsHeartbeatStream, silentLogger } from "@keyhold/core";
import {
  type AckRecord,
  ackClock,
  analyzeAcks,
  checkLinearizable,
  lostWrites,
  ProxiedNatsCluster,
  registerModel,
  type ShardingProcess,
  type ShardingProcessOptions,
  waitFor,
} from "@keyhold/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { expect } from "vitest";
import { type LoadTypes, REPLICATED } from "./entities.js";
import { COUNTERS, connectClient, REGISTERS, type runLoad, spawnNodes } from "./support.js";

export interface PartitionRig {
  readonly nats: ProxiedNatsCluster;
  /** The server that will be cut off; nodes 0 and 1 are on it. */
  readonly minority: number;
  /** The server that led the heartbeat stream at the start. */
  readonly leader: number;
  readonly nodes: ShardingProcess[];
  readonly majorityClient: Sharding;
  readonly minorityClient: Sharding;
  streamLeader(): Promise<number | undefined>;
}

export async function startRig(
  name: string,
  leaderOnMinority: boolean,
  cleanup: (() => Promise<unknown>)[],
  extra: Partial<ShardingProcessOptions> = {},
): Promise<PartitionRig> {
  const nats = await ProxiedNatsCluster.start({ size: 3, jetstream: true });
  cleanup.push(() => nats.close());
  const nc = await connect({ servers: nats.directUrls[0]! });
  cleanup.push(() => nc.close());
  await waitFor(
    () =>
      NatsHeartbeatStream.open(nc, name, membershipSubjects(name).memberHeartbeats, silentLogger).then(
        () => true,
        () => false,
      ),
    { timeout: 30_000, interval: 500, message: "the heartbeat stream was not created" },
  );
  const jsm = await jetstreamManager(nc);
  const streamLeader = async () => {
    const info = await jsm.streams.info(heartbeatStreamName(name)).catch(() => undefined);
    const leader = info?.cluster?.leader;
    return leader === undefined ? undefined : Number(leader.split("-").pop());
  };
  const info = await jsm.streams.info(heartbeatStreamName(name));
  expect(info.config.num_replicas).toBe(3);
  await waitFor(async () => (await streamLeader()) !== undefined, { timeout: 20_000 });
  const leader = (await streamLeader())!;
  const minority = leaderOnMinority ? leader : leader === 2 ? 1 : 2;
  const [m1, m2] = [0, 1, 2].filter((i) => i !== minority) as [number, number];
  const urls = [minority, minority, m1, m2, m1].map((i) => nats.urls[i]!);
  const nodes = await spawnNodes(urls, name, 5, { leases: "jetstream", ...extra });
  for (const n of nodes) cleanup.push(() => n.kill());
  const majorityClient = await connectClient(nats.urls[m1]!, name);
  cleanup.push(() => majorityClient.close());
  const minorityClient = await connectClient(nats.urls[minority]!, name);
  cleanup.push(() => minorityClient.close());
  await waitFor(
    () => majorityClient.node.members().length === 5 && minorityClient.node.members().length === 5,
    {
      timeout: 30_000,
    },
  );
  expect(majorityClient.node.leaseMode).toBe("jetstream");
  return { nats, minority, leader, nodes, majorityClient, minorityClient, streamLeader };
}

/** Counts of a load at one moment, to report availability over a window. */
export function snapshot(load: ReturnType<typeof runLoad>) {
  return { total: load.total, failed: load.failed };
}

export function availability(from: { total: number; failed: number }, to: { total: number; failed: number }) {
  const total = to.total - from.total;
  const ok = total - (to.failed - from.failed);
  return `${ok}/${total} asks ok (${((100 * ok) / Math.max(1, total)).toFixed(1)}%)`;
}

/** Polls whether each of `nodes` is fenced, until stopped; returns who ever was. */
export function watchFenced(nodes: readonly ShardingProcess[]) {
  const fenced = new Set<string>();
  let stop = false;
  const running = (async () => {
    while (!stop) {
      for (const n of nodes) {
        const s = await n.state().catch(() => undefined);
        if (s?.fenced) fenced.add(n.id);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    fenced,
    async stop() {
      stop = true;
      await running;
      return fenced;
    },
  };
}

/**
 * The op ids each key holds in the end, read through `c`. The reads wait for the cluster to
 * serve every key again (up to 60 s: liveness after a heal is measured and printed, not
 * asserted; the safety claims follow).
 */
export async function appliedOps(
  c: Sharding,
  types: LoadTypes = REPLICATED,
): Promise<{ applied: Map<string, Set<string>>; ms: number }> {
  const applied = new Map<string, Set<string>>();
  const t0 = Date.now();
  const settledRead = async (read: () => Promise<string[]>): Promise<string[]> => {
    for (;;) {
      try {
        return await read();
      } catch (err) {
        if (Date.now() - t0 > 60_000) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  for (const k of COUNTERS)
    applied.set(
      `${types.counter.type}/${k}`,
      new Set(await settledRead(() => c.ref(types.counter, k).ops())),
    );
  for (const k of REGISTERS)
    applied.set(
      `${types.register.type}/${k}`,
      new Set(await settledRead(() => c.ref(types.register, k).ops())),
    );
  return { applied, ms: Date.now() - t0 };
}

/**
 * Prints and asserts the verdicts: no key acknowledged by two nodes at overlapping times, no
 * acknowledged write lost (by op id, client- and node-side), every register key linearizable.
 */
export async function judgeOwners(
  label: string,
  c: Sharding,
  loads: readonly ReturnType<typeof runLoad>[],
  acks: readonly AckRecord[],
  window?: { readonly faultAt: number; readonly healAt: number },
  types: LoadTypes = REPLICATED,
): Promise<void> {
  const { applied, ms } = await appliedOps(c, types);
  console.log(`[nats-partition] ${label}: every key served again ${ms} ms after the final reads began`);
  const clientAcked = loads.flatMap((l) => l.acked);
  const clientLost = clientAcked.filter(([key, op]) => !applied.get(key)?.has(op));
  const nodeLost = lostWrites(acks, (key) => applied.get(key));
  const overlaps = analyzeAcks(acks);
  const registers = loads
    .flatMap((l) => l.history.operations())
    .filter((o) => o.key.startsWith(`${types.register.type}/`));
  const lin = checkLinearizable(registers, registerModel(), { timeoutMs: 60_000 });
  const bad = lin.keys.filter((k) => k.verdict === "not-linearizable").length;
  console.log(
    `[nats-partition] ${label}: ${acks.length} node ack records; keys with two-owner overlap ` +
      `${overlaps.keysWithOverlap.length}${overlaps.longest ? ` (longest ${overlaps.longest.ms.toFixed(1)} ms)` : ""}; ` +
      `acknowledged writes lost: ${clientLost.length} of ${clientAcked.length} (client side), ` +
      `${nodeLost.lost.length} of ${nodeLost.acked} (node logs); register keys not linearizable ${bad} of ` +
      `${lin.keys.length} (verdict ${lin.verdict})`,
  );
  if (nodeLost.lost.length > 0 && window) {
    // Where the lost writes come from, for whoever works on the heal (per-partition epochs).
    const phase = (t: number) => (t < window.faultAt ? "before" : t < window.healAt ? "during" : "after");
    const by = new Map<string, number>();
    for (const r of nodeLost.lost) {
      const k = `${r.node} acked ${phase(r.t1)} the fault`;
      by.set(k, (by.get(k) ?? 0) + 1);
    }
    console.log(
      `[nats-partition] ${label}: lost writes by node and phase: ${[...by].map(([k, n]) => `${k}: ${n}`).join("; ")}`,
    );
    for (const r of nodeLost.lost.slice(0, 12)) {
      const tl = acks
        .filter((x) => x.key === r.key && x.kind === "write")
        .sort((x, y) => x.t1 - y.t1)
        .map((x) => `${x.node}@${((x.t1 - window.faultAt) / 1000).toFixed(2)}s${x.op === r.op ? "*" : ""}`);
      console.log(
        `[nats-partition] ${label}: lost ${r.key} ${r.op}; the key's writes (s from the fault): ${tl.join(" ")}`,
      );
    }
  }
  expect(overlaps.keysWithOverlap, "keys acknowledged by two nodes at overlapping times").toEqual([]);
  expect(
    clientLost.map(([k, op]) => `${k} ${op}`),
    "writes acknowledged to clients, lost",
  ).toEqual([]);
  expect(
    nodeLost.lost.map((r) => `${r.key} ${r.op} (${r.node})`),
    "writes acknowledged by nodes, lost",
  ).toEqual([]);
  expect(
    lin.keys.filter((k) => k.verdict === "not-linearizable").map((k) => k.key),
    "non-linearizable register keys",
  ).toEqual([]);
  // "unknown" (the checker's time budget ran out) would prove nothing either way.
  expect(lin.verdict).toBe("linearizable");
}

/** The time base of ack records, to place lost writes before, during or after a fault. */
export const now = () => ackClock();
