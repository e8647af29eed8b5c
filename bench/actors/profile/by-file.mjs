// Self time of a .cpuprofile (node --cpu-prof) per source file, as % of the busy samples (idle
// excluded). argv: the profile, rows (default 30).
import { readFileSync } from "node:fs";

const [file, rowsArg = "30"] = process.argv.slice(2);
const p = JSON.parse(readFileSync(file, "utf8"));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
let busy = 0;
for (let i = 0; i < p.samples.length; i++) {
  const cf = byId.get(p.samples[i]).callFrame;
  if (cf.functionName === "(idle)") continue;
  const d = p.timeDeltas[i] ?? 0;
  busy += d;
  const k = cf.url ? cf.url.split("/").slice(-3).join("/") : cf.functionName;
  self.set(k, (self.get(k) ?? 0) + d);
}
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(rowsArg)))
  console.log(((100 * v) / busy).toFixed(1).padStart(5), k);
