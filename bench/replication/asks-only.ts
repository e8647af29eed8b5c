// Only the asks part of `npm run bench -- replication` (replicas 1/2/3, the KV store, the hot
// key, beside the echo ceiling), printing its tables and the issue 10 ratios, for A/B pairs
// without the failover part:
//   node --conditions=@keyhold/source --import tsx bench/replication/asks-only.ts [--quick]
import type { BenchContext } from "../harness.js";
import { formatTable } from "../harness.js";
import { replicatedAsks } from "./asks.js";

const ctx: BenchContext = {
  quick: process.argv.includes("--quick"),
  figure() {},
  target: (_name, _figure, value, op, threshold) => (op === ">=" ? value >= threshold : value <= threshold),
  table(title, rows, note) {
    process.stdout.write(`${title}\n${formatTable(rows)}\n${note ?? ""}\n\n`);
  },
  log: (m) => process.stderr.write(`${m}\n`),
  info: (key, value) => process.stdout.write(`${key}: ${value}\n`),
};
await replicatedAsks(ctx);
process.exit(0);
