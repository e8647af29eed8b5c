// Benchmarks of @keyhold/core (issue 2): placement throughput, how fast peers drop a leaving or
// killed member, heartbeat traffic, and heartbeat cost in both lease modes (issue 9). Each part lives in bench/core/.
import { heartbeatTraffic } from "./core/heartbeat.js";
import { leaseModeCost } from "./core/lease-modes.js";
import { leaveLatency } from "./core/leave.js";
import { placementThroughput } from "./core/placement.js";
import type { BenchModule } from "./harness.js";

export const bench: BenchModule = {
  name: "core",
  about: "placement ops/s, time for peers to drop a member, heartbeat traffic, heartbeat cost by lease mode",
  async run(ctx) {
    // CPU-bound first, while nothing else of ours runs in this process.
    await placementThroughput(ctx);
    await heartbeatTraffic(ctx);
    await leaseModeCost(ctx);
    await leaveLatency(ctx);
  },
};
