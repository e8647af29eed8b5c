// Microbenchmark of a replica serving copies, on the built package (no NATS, no processes): µs
// per copy for decoding a `reps` batch of 4 copies (one record with 8 remembered asks each),
// judging each (Replicator.receive: epoch floor, primary in this view, version) and encoding the
// acknowledgements (copy-batch.ts serveCopyBatch). Run `npm run build` first; argv: the dist
// directory (default: this tree's), e.g. a build of another commit copied inside the repository.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { hashKey } from "@keyhold/core";

const dir = resolve(process.argv[2] ?? "packages/actors/dist");
const load = (f) => import(pathToFileURL(`${dir}/${f}`).href);
const wire = await load("wire.js");
const rep = await load("replication.js");
const cb = await load("copy-batch.js");
const cw = await load("copy-wire.js");
const RING = 64;
const primary = "0123456789abcdef0123456789abcdef";
const ring = { ringSize: RING, partition: (k) => hashKey(k) % RING, ownerOfPartition: () => primary };
const node = { ring, members: () => [primary, "me"], leaseValid: () => true };
const clock = { now: () => Date.now(), monoNow: () => performance.now() };
const r = new rep.Replicator({
  node,
  transport: {},
  cluster: "c",
  nodeId: "me",
  clock,
  logger: { debug() {}, info() {}, warn() {}, error() {} },
  timeoutMs: 1000,
  quorum: "all",
  replicasOf: () => 3,
  orphanGraceMs: 1000,
});
const recent = Array.from({ length: 8 }, (_, i) => [`abcdefghijkl${1000 + i}`, true, 1000 + i]);
const keys = Array.from({ length: 5000 }, (_, i) => `key-${100_000 + i}`);
let ver = 1;
const CHUNK = 1000;
for (let round = 0; round < 3; round++) {
  let timed = 0;
  let copies = 0;
  for (let c = 0; c < 50; c++) {
    // Fresh batches with rising versions, so every copy is kept (the common case); only serving
    // them is timed.
    const batches = [];
    for (let i = 0; i < CHUNK; i++) {
      const msgs = [];
      for (let j = 0; j < 4; j++) {
        const key = keys[(i * 4 + j) % keys.length];
        const rec = { t: "rep3", key, s: { n: ver }, ver, acq: 1, act: true, recent };
        msgs.push(wire.encode({ v: 1, k: "rep", p: ring.partition(key), from: primary, recs: [rec], ep: 1 }));
      }
      batches.push(cw.encodeCopyBatch(msgs));
      if ((i * 4 + 4) % keys.length === 0) ver++;
    }
    ver++;
    const t = performance.now();
    for (const b of batches) {
      cb.serveCopyBatch(r, wire.decodeRequest(b), () => {
        throw new Error("malformed");
      });
    }
    timed += performance.now() - t;
    copies += CHUNK * 4;
  }
  const us = (timed * 1000) / copies;
  console.log(
    JSON.stringify({
      round,
      usPerCopy: +us.toFixed(2),
      kept: r.stats.copiesIn,
      refused: r.stats.copiesRefused,
    }),
  );
}
