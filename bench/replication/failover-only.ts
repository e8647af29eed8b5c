// Only the SIGKILL failover part of `npm run bench -- replication`, printing its table:
//   node --conditions=@keyhold/source --import tsx bench/replication/failover-only.ts
// With KEYHOLD_CHILD_LOG=1 FAILOVER_LOGS=1 it prints the survivors' logs when a key of the killed
// node stayed unanswered for a whole trial (issue 9: a partition left waiting for the dead node).
import type { BenchContext } from "../harness.js";
import { formatTable } from "../harness.js";
import { failoverTime } from "./failover.js";

const ctx: BenchContext = {
  quick: process.argv.includes("--quick"),
  figure() {},
  target: () => true,
  table(title, rows, note) {
    process.stdout.write(`${title}\n${formatTable(rows)}\n${note ?? ""}\n`);
  },
  log: (m) => process.stderr.write(`${m}\n`),
  info() {},
};
await failoverTime(ctx);
process.exit(0);
