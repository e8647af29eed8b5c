// Heap per active idle entity with 100k and 1M entities, each count in a fresh child process
// (--expose-gc), split into the user's state object and Keyhold's overhead.
import { fileURLToPath } from "node:url";
import { NatsServer, spawnTs } from "@keyhold/testing";
import type { BenchContext, Row } from "../harness.js";
import type { MemoryResult } from "./memory-child.js";

const TARGET_OVERHEAD_BYTES = 1_024;
const CHILD_TIMEOUT_MS = 300_000;

export async function entityMemory(ctx: BenchContext): Promise<void> {
  const counts = ctx.quick ? [20_000] : [100_000, 1_000_000];
  await using server = await NatsServer.start();
  const rows: Row[] = [];
  for (const n of counts) {
    ctx.log(`memory: activating ${n.toLocaleString("en-US")} entities in a fresh process`);
    const r = await measure(n, server.url, `bench-mem-${process.pid}-${n}`);
    if (r.active !== n) throw new Error(`expected ${n} active entities, the node has ${r.active}`);
    const overhead = r.entityBytes - r.stateBytes;
    const m = `memory[${n}]`;
    ctx.figure(`${m}.entityBytes`, r.entityBytes, "B");
    ctx.figure(`${m}.stateBytes`, r.stateBytes, "B");
    ctx.figure(`${m}.overheadBytes`, overhead, "B");
    ctx.figure(`${m}.keyedMapBytes`, r.keyedBytes, "B");
    ctx.figure(`${m}.overheadBeyondMapBytes`, r.entityBytes - r.keyedBytes, "B");
    ctx.figure(`${m}.activationPerSec`, n / (r.activationMs / 1000), "asks/s");
    ctx.figure(`${m}.heapUsedMiB`, r.heapUsedMiB, "MiB");
    ctx.target(
      `Keyhold heap overhead per active idle entity, ${n.toLocaleString("en-US")} entities`,
      `${m}.overheadBytes`,
      overhead,
      "<=",
      TARGET_OVERHEAD_BYTES,
      "B",
    );
    rows.push({
      entities: n,
      "heap/entity B": r.entityBytes,
      "state {n:0} B": r.stateBytes,
      "Keyhold overhead B": overhead,
      "Map<key,{n:0}> B": r.keyedBytes,
      "beyond Map B": r.entityBytes - r.keyedBytes,
      "activation asks/s": n / (r.activationMs / 1000),
      "heap MiB": r.heapUsedMiB,
    });
  }
  ctx.table(
    "Heap per active idle entity (Counter, state { n: 0 }; single-member node, idleMs 0, maxActive above N)",
    rows,
    "heapUsed after gc() x2, after minus before activating N entities with one local ask each (1,000 in flight),\n" +
      "/ N. Each count runs in a fresh process. state = a preallocated array of N { n: 0 } (object + array slot);\n" +
      "Keyhold overhead = heap/entity - state. Map<key,{n:0}> = the same keys and states in a Map: what any keyed\n" +
      "in-memory store holds at least; 'beyond Map' is what Keyhold adds to that (slot, instance, indexes).",
  );
}

function measure(n: number, servers: string, cluster: string): Promise<MemoryResult> {
  const child = spawnTs(
    fileURLToPath(new URL("./memory-child.ts", import.meta.url)),
    [`${n}`, servers, cluster],
    {
      // spawnTs adds these to the tsx loader flags; they replace any NODE_OPTIONS of ours.
      env: { NODE_OPTIONS: "--expose-gc --max-old-space-size=8192" },
    },
  );
  return new Promise<MemoryResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.process.kill("SIGKILL");
      reject(new Error(`memory child for ${n} entities took over ${CHILD_TIMEOUT_MS} ms`));
    }, CHILD_TIMEOUT_MS);
    child.process.on("message", (m: { type: string; result?: MemoryResult; message?: string }) => {
      if (m.type === "result" && m.result) {
        clearTimeout(timer);
        resolve(m.result);
      } else if (m.type === "error") {
        clearTimeout(timer);
        reject(new Error(`memory child for ${n} entities failed: ${m.message}`));
      }
    });
    void child.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`memory child exited with ${code} before reporting:\n${child.logs().join("\n")}`));
    });
  }).finally(() => {
    // The child closes its node and exits by itself; do not wait for that on a result.
    if (child.process.exitCode === null) child.process.kill("SIGKILL");
  });
}
