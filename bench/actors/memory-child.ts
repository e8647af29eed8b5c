// Child of the entity memory benchmark, run with --expose-gc: measures the heap held by N plain
// `{ n: 0 }` objects (the user's state alone), by a Map of them by key, then by N active idle
// Counter entities on a single-member Sharding node. argv: N, servers, cluster. Reports over IPC.
import { performance } from "node:perf_hooks";
import { Sharding } from "@keyhold/actors";
import { DEFAULT_RING_SIZE, silentLogger } from "@keyhold/core";
import { waitFor } from "@keyhold/testing";
import { Counter, entities } from "./entities.js";

export interface MemoryResult {
  readonly n: number;
  /** Heap per `{ n: 0 }` held in a preallocated array: the user's state object alone. */
  readonly stateBytes: number;
  /** Heap per entry of a Map<string, { n: 0 }> with the same keys: any keyed store's floor. */
  readonly keyedBytes: number;
  /** Heap per active idle entity on a Sharding node (state included). */
  readonly entityBytes: number;
  readonly activationMs: number;
  readonly active: number;
  readonly heapUsedMiB: number;
}

const WORKERS = 1_000;
const WARM_KEYS = 5_000;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("memory-child needs node --expose-gc");
const [nArg = "", servers = "", cluster = ""] = process.argv.slice(2);
const n = Number(nArg);

/** heapUsed after full collections (twice: the first may leave weak/finalizable garbage). */
function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

const keyOf = (i: number) => `key-${i}`;

function stateBaseline(): number {
  const before = heap();
  const held: { n: number }[] = new Array(n);
  for (let i = 0; i < n; i++) held[i] = { n: 0 };
  const after = heap();
  if (held.length !== n) throw new Error("unreachable"); // keeps `held` alive across heap()
  return (after - before) / n;
}

function keyedBaseline(): number {
  const before = heap();
  const held = new Map<string, { n: number }>();
  for (let i = 0; i < n; i++) held.set(keyOf(i), { n: 0 });
  const after = heap();
  if (held.size !== n) throw new Error("unreachable");
  return (after - before) / n;
}

async function activateAll(s: Sharding, key: (i: number) => string, count: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await s.ask(Counter, key(next++), "add", [1]);
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
}

try {
  const stateBytes = stateBaseline();
  const keyedBytes = keyedBaseline();
  const sharding = await Sharding.start({
    servers,
    cluster,
    entities,
    logger: silentLogger,
    idleMs: 0,
    maxActive: n + WARM_KEYS + 1,
  });
  await waitFor(() => sharding.node.ownedPartitions().length === DEFAULT_RING_SIZE, {
    timeout: 15_000,
    message: "the node did not come to own every partition",
  });
  // Warm-up entities exist in both measurements and cancel out; they take the JIT's code and
  // the first-use allocations out of the per-entity figure.
  await activateAll(sharding, (i) => `warm-${i}`, WARM_KEYS);
  const before = heap();
  const t0 = performance.now();
  await activateAll(sharding, keyOf, n);
  const activationMs = performance.now() - t0;
  const after = heap();
  const active = sharding.stats().host.active - WARM_KEYS;
  const result: MemoryResult = {
    n,
    stateBytes,
    keyedBytes,
    entityBytes: (after - before) / n,
    activationMs,
    active,
    heapUsedMiB: after / 2 ** 20,
  };
  process.send?.({ type: "result", result });
  await sharding.close();
  process.disconnect();
} catch (err) {
  process.send?.({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 50);
}
