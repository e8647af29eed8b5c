// Failover time (issue 8): node processes on a real nats-server; the owner of a set of keys is
// SIGKILLed or SIGSTOPped, and each of its keys is timed until a write to it is acknowledged
// by the new owner. Default and short lease; the part lives in bench/actors/failover.ts.
import { failoverAfterFault } from "./actors/failover.js";
import type { BenchModule } from "./harness.js";

export const bench: BenchModule = {
  name: "failover",
  about: "ms from SIGKILL / SIGSTOP of an owner to the first write its keys' new owner acknowledges",
  async run(ctx) {
    await failoverAfterFault(ctx);
  },
};
