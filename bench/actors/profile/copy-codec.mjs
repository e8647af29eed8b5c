// Microbenchmark of one replica copy on the wire, on the built package (no NATS, no processes):
// µs to pack a `rep` message holding one record with 8 remembered asks (what a primary sends
// each replica per write) and to unpack and validate it (what each replica does). Run
// `npm run build` first; argv: the dist directory to load wire.js from (default: this tree's),
// so a build of another commit copied inside the repository compares side by side:
//   node bench/actors/profile/copy-codec.mjs
//   node bench/actors/profile/copy-codec.mjs packages/actors/.base-dist
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const dir = resolve(process.argv[2] ?? "packages/actors/dist");
const w = await import(pathToFileURL(`${dir}/wire.js`).href);
const recent = Array.from({ length: 8 }, (_, i) => [`abcdefghijkl${1000 + i}`, true, 1000 + i]);
const rec = { t: "rep3", key: "key-100123", s: { n: 1000 }, ver: 1000, acq: 7, act: true, recent };
const from = "0123456789abcdef0123456789abcdef";
const N = 200_000;
for (let round = 0; round < 3; round++) {
  let t = performance.now();
  let bytes;
  for (let i = 0; i < N; i++) bytes = w.encode({ v: 1, k: "rep", p: 17, from, recs: [rec], ep: 7 });
  const enc = ((performance.now() - t) * 1000) / N;
  t = performance.now();
  let d;
  for (let i = 0; i < N; i++) d = w.decodeRequest(bytes);
  const dec = ((performance.now() - t) * 1000) / N;
  if (d.error || d.recs[0].recent.length !== 8) throw new Error(`bad decode: ${JSON.stringify(d)}`);
  console.log(
    JSON.stringify({ round, encodeUs: +enc.toFixed(2), decodeUs: +dec.toFixed(2), bytes: bytes.length }),
  );
}
