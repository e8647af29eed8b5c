// A tour of @keyhold/core in one process: three ShardNodes join one ring, print who owns what,
// react to acquired/released, then one leaves gracefully and its partitions move to the others.
// Uses NATS_URL when set, else starts its own nats-server on a random port.
import { randomUUID } from "node:crypto";
import { Ring, type ShardEvent, ShardNode } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";

// A short lease so the tour takes seconds; the defaults are 2000 / 6000 / 5000.
const LEASE = { ringSize: 64, heartbeatMs: 200, ttlMs: 600, skewMs: 1000 };
const IDS = ["node-a", "node-b", "node-c"] as const;
const KEYS = ["user-42", "counter:1", "cart:7", "room:lobby", "session:9f2c"];

const t0 = Date.now();
function log(line = ""): void {
  const s = ((Date.now() - t0) / 1000).toFixed(3).padStart(7);
  console.log(line === "" ? "" : `[${s}s] ${line}`);
}

/** "0-3 7 9-12": a sorted partition list, runs collapsed. */
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

interface Watched {
  readonly node: ShardNode;
  /** The owned set the event stream implies; must always equal node.ownedPartitions(). */
  readonly owned: Set<number>;
  readonly acquired: number[];
  readonly released: number[];
  readonly done: Promise<void>;
}

/**
 * Reacts to one node's events. The stream opens with a snapshot (members, then acquired for
 * what the node owns now) and continues with every change, so `owned` is exact from the start.
 * Events of one change arrive together; they are printed as one line per kind.
 */
function watch(node: ShardNode): Watched {
  const owned = new Set<number>();
  const acquired: number[] = [];
  const released: number[] = [];
  let gained: number[] = [];
  let lost: number[] = [];
  let pending = false;
  const flush = () => {
    pending = false;
    if (lost.length > 0) log(`${node.id} released ${lost.length}: ${ranges(lost)}`);
    if (gained.length > 0) log(`${node.id} acquired ${gained.length}: ${ranges(gained)}`);
    lost = [];
    gained = [];
  };
  const react = (e: ShardEvent) => {
    switch (e.type) {
      case "members": {
        const change = [...e.joined.map((m) => `+${m}`), ...e.left.map((m) => `-${m}`)].join(" ");
        log(`${node.id} sees members [${e.members.join(", ")}] (${change})`);
        break;
      }
      case "acquired":
        owned.add(e.partition);
        acquired.push(e.partition);
        gained.push(e.partition);
        break;
      case "released":
        owned.delete(e.partition);
        released.push(e.partition);
        lost.push(e.partition);
        break;
      case "fenced":
      case "unfenced":
        log(`${node.id} is ${e.type}`);
        break;
    }
    if (!pending) {
      pending = true;
      setImmediate(flush);
    }
  };
  const done = (async () => {
    for await (const e of node.events()) react(e);
    flush();
  })();
  return { node, owned, acquired, released, done };
}

function sameSet(a: ReadonlySet<number>, b: readonly number[]): boolean {
  return a.size === b.length && b.every((p) => a.has(p));
}

async function main(): Promise<number> {
  await using server = process.env.NATS_URL ? undefined : await NatsServer.start();
  const url = process.env.NATS_URL ?? server!.url;
  // A fresh cluster name, so a shared NATS_URL never mixes this run with another ring.
  const cluster = `membership-${randomUUID().slice(0, 8)}`;
  log(`NATS ${url}${server ? " (embedded nats-server)" : " (NATS_URL)"}, cluster ${cluster}`);
  log(
    `lease: heartbeat ${LEASE.heartbeatMs} ms, ttl ${LEASE.ttlMs} ms, skew ${LEASE.skewMs} ms; ` +
      `ring of ${LEASE.ringSize} partitions`,
  );

  const watched: Watched[] = [];
  for (const nodeId of IDS) {
    log();
    log(`starting ${nodeId}`);
    const node = await ShardNode.start({ servers: url, cluster, nodeId, ...LEASE });
    watched.push(watch(node));
    // Each join moves partitions to the newcomer only; the others print what they released.
    // A node joins step by step by default (joinStepPartitions "auto"): wait for its last step,
    // when no view caps it any more.
    await waitFor(
      () => watched.every((w) => w.node.members().length === watched.length && w.node.ring.caps.size === 0),
      { timeout: 10_000, message: `the nodes did not all see ${nodeId} join` },
    );
    await new Promise((resolve) => setImmediate(resolve));
  }
  const [a, b, c] = watched as [Watched, Watched, Watched];

  log();
  log("the ring:");
  for (const w of watched) {
    const owned = w.node.ownedPartitions();
    console.log(`  ${w.node.id} owns ${String(owned.length).padStart(2)}: ${ranges(owned)}`);
  }
  for (const key of KEYS) {
    console.log(
      `  ${JSON.stringify(key).padEnd(14)} partition ${String(a.node.partition(key)).padStart(2)}` +
        `  place ${a.node.place(key)}  owners(key, 3) ${a.node.owners(key, 3).join(" > ")}`,
    );
  }
  const agree = KEYS.every((k) => b.node.place(k) === a.node.place(k) && c.node.place(k) === a.node.place(k));
  log(`all three nodes agree on every owner: ${agree}`);

  const before = a.node.ring;
  const leaving = c.node.ownedPartitions();
  log();
  log(`closing ${c.node.id} gracefully (it owns ${leaving.length} partitions)`);
  const closeAt = Date.now();
  await c.node.close();
  await c.done;
  await waitFor(() => a.node.members().length === 2 && b.node.members().length === 2, {
    timeout: 5_000,
    message: `the others did not drop ${c.node.id}`,
  });
  log(`${a.node.id} and ${b.node.id} dropped ${c.node.id} ${Date.now() - closeAt} ms after close()`);
  await new Promise((resolve) => setImmediate(resolve));

  // Which partitions changed owner between the 3-member ring and the 2-member ring.
  const after = new Ring(a.node.members(), LEASE.ringSize);
  const moved = new Map<string, number[]>();
  let others = 0;
  for (let p = 0; p < LEASE.ringSize; p++) {
    const from = before.ownerOfPartition(p);
    const to = after.ownerOfPartition(p)!;
    if (from === to) continue;
    if (from !== c.node.id) others++;
    moved.set(to, [...(moved.get(to) ?? []), p]);
  }
  log();
  log(`moved partitions of ${c.node.id}:`);
  for (const [to, parts] of moved) console.log(`  moved ${parts.length} to ${to}: ${ranges(parts)}`);
  log(`partitions that moved between the two survivors: ${others}`);

  // Check what was printed against the ring: exact, not eventual, once membership settled.
  const problems: string[] = [];
  if (!agree) problems.push("nodes disagreed on placement");
  if (others !== 0) problems.push(`${others} partitions moved that ${c.node.id} did not own`);
  const movedCount = [...moved.values()].reduce((n, l) => n + l.length, 0);
  if (movedCount !== leaving.length)
    problems.push(`${movedCount} moved, ${c.node.id} owned ${leaving.length}`);
  for (const w of [a, b]) {
    if (!sameSet(w.owned, w.node.ownedPartitions())) problems.push(`${w.node.id}: events and state differ`);
    const got = (moved.get(w.node.id) ?? []).every((p) => w.owned.has(p));
    if (!got) problems.push(`${w.node.id} did not acquire what moved to it`);
  }
  if (!sameSet(new Set(c.released), leaving)) problems.push(`${c.node.id} did not release what it owned`);

  await a.node.close();
  await b.node.close();
  await Promise.all([a.done, b.done]);
  log();
  if (problems.length > 0) {
    for (const p of problems) console.error(`FAILED: ${p}`);
    return 1;
  }
  log("ok: only the leaving node's partitions moved, and the event streams matched the ring");
  return 0;
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
