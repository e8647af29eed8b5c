// place() and owners(key, 3) throughput with 8, 64 and 256 members: the precomputed Ring (what
// ShardNode answers from), ShardNode itself, and the naive per-call HRW loop (ownerOf/ownersOf).
import { DEFAULT_RING_SIZE, hashKey, ownerOf, ownersOf, Ring, ShardNode, silentLogger } from "@keyhold/core";
import { SimBus, seededRandom, VirtualClock } from "@keyhold/testing";
import {
  type BenchContext,
  type OpLoop,
  type Row,
  SINK_MASK,
  type Summary,
  summarize,
  type ThroughputOptions,
  throughput,
} from "../harness.js";

const MEMBER_COUNTS = [8, 64, 256] as const;
/** The member count the targets are stated at. */
const TARGET_MEMBERS = 64;
const TARGET_PLACE_OPS = 10_000_000;
const TARGET_SPEEDUP = 5;
const KEY_COUNT = 100_000;
const RING_SIZE = DEFAULT_RING_SIZE;
/** ShardNode is measured on a simulated bus; 256 in-process nodes take too long to converge. */
const NODE_MEMBER_COUNTS = new Set<number>([8, 64]);

export async function placementThroughput(ctx: BenchContext): Promise<void> {
  const opts: ThroughputOptions = ctx.quick
    ? { runs: 5, runMs: 30, warmupMs: 60 }
    : { runs: 9, runMs: 150, warmupMs: 300 };
  const random = seededRandom(2);
  // Realistic keys, made up front so the timed loops measure placement, not key building.
  const keys = Array.from({ length: KEY_COUNT }, () => `user-${100_000 + Math.floor(random() * 900_000)}`);
  const rows: Row[] = [];

  for (const n of MEMBER_COUNTS) {
    // Default node ids are 32 hex characters (a uuid without dashes); the naive loop hashes
    // every one of them per call, so their length matters.
    const members = Array.from({ length: n }, () => hexId(random));
    const buildMs = timeRingBuild(members, ctx.quick ? 5 : 21);
    ctx.figure(`ring.build[${n}]`, buildMs, "ms");
    const ring = new Ring(members, RING_SIZE);
    checkAgreement(ring, members, keys);

    const sim = NODE_MEMBER_COUNTS.has(n) ? await simCluster(members) : undefined;
    try {
      ctx.log(`placement with ${n} members`);
      const loops: Record<string, OpLoop> = {
        "place.ring": ringPlace(ring),
        "place.naive": naivePlace(members),
        "owners3.ring": ringOwners3(ring),
        "owners3.naive": naiveOwners3(members),
      };
      if (sim) {
        loops["place.node"] = nodePlace(sim.node);
        loops["owners3.node"] = nodeOwners3(sim.node);
      }
      // The floor under place(): hashing the key alone.
      if (n === TARGET_MEMBERS) loops.hashKey = hashLoop();
      const results = throughput(loops, keys, opts);
      for (const [name, s] of Object.entries(results)) {
        ctx.figure(name === "hashKey" ? name : `${name}[${n}]`, s.median, "ops/s");
      }
      for (const op of ["place", "owners3"] as const) {
        const viaRing = results[`${op}.ring`]!;
        const naive = results[`${op}.naive`]!;
        const viaNode = results[`${op}.node`];
        ctx.figure(`${op}.speedup.ring[${n}]`, viaRing.median / naive.median, "x");
        rows.push(
          row(op === "place" ? "place()" : "owners(k,3)", String(n), viaRing, viaNode, naive, buildMs),
        );
        if (op === "place" && n === TARGET_MEMBERS) {
          placeTargets(ctx, n, naive, "Ring", "ring", viaRing);
          if (viaNode) placeTargets(ctx, n, naive, "ShardNode", "node", viaNode);
        }
      }
      if (results.hashKey)
        rows.push(row("hashKey (floor)", String(n), results.hashKey, undefined, undefined));
    } finally {
      await sim?.close();
    }
  }

  ctx.table(
    `Placement throughput, M ops/s (median of ${opts.runs} runs of ~${opts.runMs} ms; ${KEY_COUNT / 1000}k keys "user-NNNNNN", ringSize ${RING_SIZE})`,
    rows,
    "Ring = the precomputed table ShardNode answers from; ShardNode = node.place()/owners() (adds a key type check,\n" +
      "measured on a simulated bus so no I/O runs meanwhile); naive = ownerOf/ownersOf, a full HRW loop per call.\n" +
      "Runs alternate between the cases; spread = (max - min) / median over them; other load on the machine widens it.",
  );
}

/** The two place() targets at 64 members, for one implementation. */
function placeTargets(ctx: BenchContext, n: number, naive: Summary, label: string, impl: string, s: Summary) {
  const speedup = s.median / naive.median;
  if (impl !== "ring") ctx.figure(`place.speedup.${impl}[${n}]`, speedup, "x");
  const fig = (name: string) => `place.${name}[${n}]`;
  ctx.target(
    `place() >= 10 M/s, ${label}, ${n} members`,
    fig(impl),
    s.median,
    ">=",
    TARGET_PLACE_OPS,
    "ops/s",
  );
  const speedupFig = fig(`speedup.${impl}`);
  ctx.target(`place() >= 5x naive, ${label}, ${n} members`, speedupFig, speedup, ">=", TARGET_SPEEDUP, "x");
}

function row(
  op: string,
  members: string,
  ring: Summary,
  node: Summary | undefined,
  naive: Summary | undefined,
  buildMs?: number,
): Row {
  const r: Row = { op, members, "Ring M/s": ring.median / 1e6 };
  r["ShardNode M/s"] = node ? node.median / 1e6 : "-";
  r["naive M/s"] = naive ? naive.median / 1e6 : "-";
  r["Ring/naive"] = naive ? `${(ring.median / naive.median).toFixed(1)}x` : "-";
  r["spread Ring"] = spread(ring);
  r["spread naive"] = naive ? spread(naive) : "-";
  r["ring build ms"] = buildMs === undefined ? "-" : buildMs;
  return r;
}

function spread(s: Summary): string {
  return `${(((s.max - s.min) / s.median) * 100).toFixed(0)}%`;
}

function hexId(random: () => number): string {
  let id = "";
  for (let i = 0; i < 32; i++) id += Math.floor(random() * 16).toString(16);
  return id;
}

/** Median time to build a Ring: what every membership change costs each node. */
function timeRingBuild(members: readonly string[], reps: number): number {
  const times: number[] = [];
  let last: Ring | undefined;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    last = new Ring(members, RING_SIZE);
    times.push(performance.now() - t0);
  }
  if (last?.members.length !== new Set(members).size) throw new Error("ring lost members");
  return summarize(times).median;
}

/** Measuring the wrong thing fast is worthless: the Ring must answer what the naive loop does. */
function checkAgreement(ring: Ring, members: readonly string[], keys: readonly string[]): void {
  for (let i = 0; i < 2000; i++) {
    const key = keys[i]!;
    const a = ring.owners(key, 3).join();
    const b = ownersOf(key, members, 3, RING_SIZE).join();
    if (ring.place(key) !== ownerOf(key, members, RING_SIZE) || a !== b) {
      throw new Error(`Ring and ownersOf disagree on ${key}: ${a} vs ${b}`);
    }
  }
}

interface SimCluster {
  readonly node: ShardNode;
  close(): Promise<void>;
}

/**
 * Real ShardNodes, one per member id, on a simulated bus with a virtual clock. Nothing runs
 * while placement is timed: virtual time does not move, so no heartbeat or expiry fires.
 */
async function simCluster(members: readonly string[]): Promise<SimCluster> {
  const bus = new SimBus(new VirtualClock());
  const nodes: ShardNode[] = [];
  const close = async () => {
    const closing = Promise.all(nodes.map((n) => n.close()));
    await bus.clock.advance(10);
    await closing;
  };
  try {
    for (const id of members) {
      let settled = false;
      const started = ShardNode.start({
        transport: bus.connect(id),
        clock: bus.clock,
        cluster: "bench",
        nodeId: id,
        logger: silentLogger,
      }).finally(() => {
        settled = true;
      });
      started.catch(() => {});
      while (!settled) await bus.clock.advance(1);
      nodes.push(await started);
    }
    await bus.clock.advance(10);
    const node = nodes[0]!;
    if (node.members().length !== members.length) {
      throw new Error(`simulated cluster saw ${node.members().length} of ${members.length} members`);
    }
    return { node, close };
  } catch (err) {
    await close();
    throw err;
  }
}

// One function literal per measured operation (see OpLoop).

function hashLoop(): OpLoop {
  return (keys, count, sink) => {
    const len = keys.length;
    // Folded into one int: storing each uint32 would box most of them as heap numbers.
    let acc = 0;
    for (let i = 0, j = 0; i < count; i++) {
      acc = (acc + hashKey(keys[j]!)) | 0;
      if (++j === len) j = 0;
    }
    sink[count & SINK_MASK] = acc;
  };
}

function ringPlace(ring: Ring): OpLoop {
  return (keys, count, sink) => {
    const len = keys.length;
    for (let i = 0, j = 0; i < count; i++) {
      sink[i & SINK_MASK] = ring.place(keys[j]!);
      if (++j === len) j = 0;
    }
  };
}

function ringOwners3(ring: Ring): OpLoop {
  return (keys, count, sink) => {
    const len = keys.length;
    for (let i = 0, j = 0; i < count; i++) {
      sink[i & SINK_MASK] = ring.owners(keys[j]!, 3);
      if (++j === len) j = 0;
    }
  };
}

function nodePlace(node: ShardNode): OpLoop {
  return (keys, count, sink) => {
    const len = keys.length;
    for (let i = 0, j = 0; i < count; i++) {
      sink[i & SINK_MASK] = node.place(keys[j]!);
      if (++j === len) j = 0;
    }
  };
}

function nodeOwners3(node: ShardNode): OpLoop {
  return (keys, count, sink) => {
    const len = keys.length;
    for (let i = 0, j = 0; i < count; i++) {
      sink[i & SINK_MASK] = node.owners(keys[j]!, 3);
      if (++j === len) j = 0;
    }
  };
}

function naivePlace(members: readonly string[]): OpLoop {
  return (keys, count, sink) => {
    const len = keys.length;
    for (let i = 0, j = 0; i < count; i++) {
      sink[i & SINK_MASK] = ownerOf(keys[j]!, members, RING_SIZE);
      if (++j === len) j = 0;
    }
  };
}

function naiveOwners3(members: readonly string[]): OpLoop {
  return (keys, count, sink) => {
    const len = keys.length;
    for (let i = 0, j = 0; i < count; i++) {
      sink[i & SINK_MASK] = ownersOf(keys[j]!, members, 3, RING_SIZE);
      if (++j === len) j = 0;
    }
  };
}
