// Benchmarks of @keyhold/actors (issue 3): asks/s and latency to an entity on this node, on
// another node and a raw NATS echo between the same processes; heap per active entity.
// Each part lives in bench/actors/.
import { askThroughput } from "./actors/asks.js";
import { entityMemory } from "./actors/memory.js";
import type { BenchModule } from "./harness.js";

export const bench: BenchModule = {
  name: "actors",
  about: "asks/s and p50/p99 local vs remote vs raw NATS echo; heap per active idle entity",
  async run(ctx) {
    await askThroughput(ctx);
    await entityMemory(ctx);
  },
};
