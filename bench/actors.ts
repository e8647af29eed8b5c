// Benchmarks of @keyhold/actors (issues 3 and 10): asks/s and latency to an entity on this node
// (tsx and the built package), on another node and raw NATS echoes between the same processes;
// read-only handlers on replicas 3 beside writes; heap per active entity.
// Each part lives in bench/actors/.
import { askThroughput } from "./actors/asks.js";
import { entityMemory } from "./actors/memory.js";
import { readOnlyAsks } from "./actors/read-only.js";
import type { BenchModule } from "./harness.js";

export const bench: BenchModule = {
  name: "actors",
  about: "asks/s and p50/p99 local vs remote vs raw NATS echo; heap per active idle entity",
  async run(ctx) {
    await askThroughput(ctx);
    await readOnlyAsks(ctx);
    await entityMemory(ctx);
  },
};
