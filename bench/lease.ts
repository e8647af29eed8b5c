// Benchmarks of the lease check (issue 8): the ask rate and CPU per ask with the check against
// without it, local and remote. The part lives in bench/actors/lease.ts.
import { leaseCheckCost } from "./actors/lease.js";
import type { BenchModule } from "./harness.js";

export const bench: BenchModule = {
  name: "lease",
  about: "asks/s and CPU µs/ask with the lease check against without, local and remote",
  async run(ctx) {
    await leaseCheckCost(ctx);
  },
};
