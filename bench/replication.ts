// Benchmarks of replication and durable state (issue 4): remote asks/s and p50/p99 for replicas
// 1, 2 and 3 and with the NATS KV store beside the raw NATS request/reply ceiling, and failover
// time after SIGKILL with the default and a short lease. Each part lives in bench/replication/.
import type { BenchModule } from "./harness.js";
import { replicatedAsks } from "./replication/asks.js";
import { failoverTime } from "./replication/failover.js";

export const bench: BenchModule = {
  name: "replication",
  about: "asks/s and p50/p99 for replicas 1/2/3 and the KV store vs raw NATS; failover time after SIGKILL",
  async run(ctx) {
    await replicatedAsks(ctx);
    await failoverTime(ctx);
  },
};
