// Self and inclusive time per function of a .cpuprofile (node --cpu-prof), as % of all samples.
// argv: the profile, how many rows.
import { readFileSync } from "node:fs";

const p = JSON.parse(readFileSync(process.argv[2], "utf8"));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = p.timeDeltas;
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  const n = byId.get(p.samples[i]);
  const d = dt[i] ?? 0;
  total += d;
  const cf = n.callFrame;
  const k = `${cf.functionName || "(anon)"} ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber + 1}`;
  self.set(k, (self.get(k) ?? 0) + d);
}
// inclusive
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const incl = new Map();
for (let i = 0; i < p.samples.length; i++) {
  const d = dt[i] ?? 0;
  const seen = new Set();
  let id = p.samples[i];
  while (id !== undefined) {
    const n = byId.get(id);
    const cf = n.callFrame;
    const k = `${cf.functionName || "(anon)"} ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber + 1}`;
    if (!seen.has(k)) {
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + d);
    }
    id = parent.get(id);
  }
}
const N = Number(process.argv[3] ?? 35);
console.log("SELF");
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, N))
  console.log(((100 * v) / total).toFixed(1).padStart(5), k);
console.log("INCL");
for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, N))
  console.log(((100 * v) / total).toFixed(1).padStart(5), k);
