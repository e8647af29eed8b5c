// The `npm run demo` cluster: three ShardNodes in three OS processes over one NATS server. Prints
// the ring, kills one node with SIGKILL, and shows how long the others took to drop it and where
// its partitions went. Exits non-zero if the survivors' partitions do not tile the ring.
// NATS_URL picks an existing server; otherwise an embedded nats-server is started.
import { randomUUID } from "node:crypto";
import { Ring } from "@keyhold/core";
import { NatsServer, NodeProcess, type NodeState, waitFor } from "@keyhold/testing";

const QUICK = process.env.DEMO_QUICK === "1";
const RING_SIZE = 64;
// Shorter than the library defaults (2000 / 6000) so a crash is noticed within the demo.
const LEASE = QUICK ? { heartbeatMs: 100, ttlMs: 300 } : { heartbeatMs: 500, ttlMs: 1500 };
const SKEW_MS = 1000;
const IDS = ["node-1", "node-2", "node-3"] as const;
const VICTIM = "node-2";

function say(line = ""): void {
  console.log(line);
}

/** "0-3 7 9-12": a partition list with runs collapsed. */
function ranges(parts: Iterable<number>): string {
  const sorted = [...parts].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const start = sorted[i]!;
    while (i + 1 < sorted.length && sorted[i + 1] === sorted[i]! + 1) i++;
    out.push(start === sorted[i] ? `${start}` : `${start}-${sorted[i]}`);
  }
  return out.length === 0 ? "(none)" : out.join(" ");
}

/** Owner of every partition according to the nodes themselves, or the problems found. */
function tile(states: readonly NodeState[]): { owner: (string | undefined)[]; problems: string[] } {
  const owner: (string | undefined)[] = new Array(RING_SIZE).fill(undefined);
  const problems: string[] = [];
  for (const s of states) {
    for (const p of s.owned) {
      if (owner[p] !== undefined) problems.push(`partition ${p} is owned by both ${owner[p]} and ${s.id}`);
      owner[p] = s.id;
    }
  }
  const orphans = owner.flatMap((o, p) => (o === undefined ? [p] : []));
  if (orphans.length > 0) problems.push(`no node owns partitions ${ranges(orphans)}`);
  return { owner, problems };
}

/** One character per partition: the owner's number, so the ring fits on one line. */
function strip(owner: readonly (string | undefined)[]): string {
  return owner.map((o) => (o === undefined ? "." : o.slice(-1))).join("");
}

function printRing(states: readonly NodeState[], owner: readonly (string | undefined)[]): void {
  for (const s of states) {
    say(`  ${s.id} owns ${String(s.owned.length).padStart(2)} partitions: ${ranges(s.owned)}`);
  }
  say(`  partitions 0..${RING_SIZE - 1} by owner: ${strip(owner)}`);
}

async function main(): Promise<number> {
  say("Keyhold membership demo: 3 node processes, one killed with SIGKILL");
  say(
    `lease: heartbeat ${LEASE.heartbeatMs} ms, ttl ${LEASE.ttlMs} ms, skew ${SKEW_MS} ms, ring ${RING_SIZE}` +
      (QUICK ? " (DEMO_QUICK=1)" : " (DEMO_QUICK=1 for 100/300; the library defaults are 2000/6000)"),
  );
  await using server = process.env.NATS_URL ? undefined : await NatsServer.start();
  const url = process.env.NATS_URL ?? server!.url;
  say(`NATS: ${url}${server ? " (embedded nats-server)" : " (from NATS_URL)"}`);
  // A fresh cluster name keeps this run apart from anything else on a shared server.
  const cluster = `demo-${randomUUID().slice(0, 8)}`;

  const nodes: NodeProcess[] = [];
  try {
    const started = Date.now();
    const spawned = await Promise.allSettled(
      IDS.map((nodeId) =>
        NodeProcess.spawn({ servers: url, cluster, nodeId, ringSize: RING_SIZE, skewMs: SKEW_MS, ...LEASE }),
      ),
    );
    for (const r of spawned) if (r.status === "fulfilled") nodes.push(r.value);
    const failed = spawned.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    say(`started ${nodes.map((n) => `${n.id} (pid ${n.pid})`).join(", ")} in ${Date.now() - started} ms`);

    let states: NodeState[] = [];
    await waitFor(
      async () => {
        states = await Promise.all(nodes.map((n) => n.state()));
        return states.every((s) => s.members.length === 3) && tile(states).problems.length === 0;
      },
      { timeout: 15_000, message: "the three nodes did not converge on one ring" },
    );
    say();
    say("the ring (every node computed the same one):");
    printRing(states, tile(states).owner);

    const victim = nodes.find((n) => n.id === VICTIM)!;
    const survivors = nodes.filter((n) => n !== victim);
    const before = new Map(states.map((s) => [s.id, s.owned]));
    const victimOwned = before.get(VICTIM)!;
    const seen = survivors.map((n) => n.events.length);

    say();
    say(`kill -9 ${VICTIM} (pid ${victim.pid}), which owns ${victimOwned.length} partitions`);
    const killedAt = Date.now();
    await victim.kill("SIGKILL");

    // Each survivor's event log records when it saw the victim leave the member set.
    const droppedAt = (n: NodeProcess, from: number): number | undefined =>
      n.events
        .slice(from)
        .find((e) => e.event.type === "members" && e.event.left.includes(VICTIM) && e.at >= killedAt)?.at;
    await waitFor(() => survivors.every((n, i) => droppedAt(n, seen[i]!) !== undefined), {
      timeout: 3 * LEASE.ttlMs + 10_000,
      message: `the survivors did not drop ${VICTIM}`,
    });
    for (const [i, n] of survivors.entries()) {
      say(`  ${n.id} dropped ${VICTIM} ${droppedAt(n, seen[i]!)! - killedAt} ms after the kill`);
    }
    say(
      `  (a crashed node is dropped ttl ms after its last heartbeat: ` +
        `${LEASE.ttlMs - LEASE.heartbeatMs}-${LEASE.ttlMs} ms after the kill, plus delivery)`,
    );

    await waitFor(
      async () => {
        states = await Promise.all(survivors.map((n) => n.state()));
        return states.every((s) => s.members.length === 2 && !s.members.includes(VICTIM));
      },
      { timeout: 10_000, message: "the survivors did not settle on two members" },
    );

    say();
    say(`where ${VICTIM}'s partitions went:`);
    const { owner, problems } = tile(states);
    for (const s of states) {
      const gained = s.owned.filter((p) => !before.get(s.id)!.includes(p));
      const lost = before.get(s.id)!.filter((p) => !s.owned.includes(p));
      say(`  to ${s.id}: ${gained.length} partitions: ${ranges(gained)}`);
      if (gained.some((p) => !victimOwned.includes(p)))
        problems.push(`${s.id} gained partitions of a survivor`);
      if (lost.length > 0) problems.push(`${s.id} lost partitions ${ranges(lost)} although it stayed`);
      const acquired = survivors
        .find((n) => n.id === s.id)!
        .events.slice(seen[survivors.findIndex((n) => n.id === s.id)]!)
        .flatMap((e) => (e.event.type === "acquired" ? [e.event.partition] : []));
      if (ranges(acquired) !== ranges(gained))
        problems.push(`${s.id}'s acquired events do not match its gains`);
    }
    const expected = new Ring(
      states.map((s) => s.id),
      RING_SIZE,
    );
    for (let p = 0; p < RING_SIZE; p++) {
      if (owner[p] !== undefined && owner[p] !== expected.ownerOfPartition(p)) {
        problems.push(`partition ${p} is owned by ${owner[p]}, HRW says ${expected.ownerOfPartition(p)}`);
      }
    }
    say("the ring now:");
    printRing(states, owner);

    say();
    for (const n of survivors) await n.close();
    say(`closed ${survivors.map((n) => n.id).join(" and ")} gracefully`);

    if (problems.length > 0) {
      for (const p of problems) console.error(`FAILED: ${p}`);
      return 1;
    }
    say("ok: the surviving nodes' partitions tile the ring, and only the killed node's partitions moved");
    return 0;
  } finally {
    await Promise.allSettled(nodes.map((n) => n.kill()));
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
