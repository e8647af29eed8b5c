// Who calls a function in a .cpuprofile (node --cpu-prof): for every sample whose stack holds a
// frame named `name`, the chain of the `depth` frames above it, weighted by time, as % of all
// samples. argv: the profile, the function name, depth (default 6), rows (default 20).
import { readFileSync } from "node:fs";

const [file, name, depthArg = "6", rowsArg = "20"] = process.argv.slice(2);
const p = JSON.parse(readFileSync(file, "utf8"));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n) => {
  const cf = n.callFrame;
  return `${cf.functionName || "(anon)"} ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber + 1}`;
};
const chains = new Map();
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  const d = p.timeDeltas[i] ?? 0;
  total += d;
  let id = p.samples[i];
  while (id !== undefined && byId.get(id).callFrame.functionName !== name) id = parent.get(id);
  if (id === undefined) continue;
  const chain = [];
  for (let k = 0; k < Number(depthArg) && id !== undefined; k++) {
    chain.push(label(byId.get(id)));
    id = parent.get(id);
  }
  const key = chain.join(" <- ");
  chains.set(key, (chains.get(key) ?? 0) + d);
}
for (const [k, v] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, Number(rowsArg)))
  console.log(((100 * v) / total).toFixed(1).padStart(5), k);
