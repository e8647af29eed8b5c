// Profiling driver for spread-out durable writes on the built package (plain node, no tsx): a
// Sharding.connect client in this process asks add(1) over 10,000 keys of a counter with
// `replicas` copies (optionally written through to a NATS KV bucket) hosted by 3 node children
// (write-host.mjs), in a closed loop; prints asks/s and the CPU µs per ask of all nodes together.
// Run `npm run build` first, then from the repository root:
//   nats-server -js -p 14333 &
//   node bench/actors/profile/write.mjs nats://127.0.0.1:14333 6 64 2 - --cpu-prof --cpu-prof-dir=/tmp/prof
//   node bench/actors/profile/write.mjs nats://127.0.0.1:14333 6 64 1 kv --cpu-prof --cpu-prof-dir=/tmp/prof
//   node bench/actors/profile/top.mjs /tmp/prof/<file>.cpuprofile 40
// argv: servers, seconds, concurrency, replicas (1..3), "kv" for a KV store or "-", then node
// flags for the node children (each writes its own profile).
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { closedLoop, KEYS } from "../built-support.mjs";
import { W1, W2, W3, writeEntities } from "./write-entities.mjs";

const [servers, secs = "5", concArg = "64", repArg = "2", storeArg = "-", ...hostArgs] =
  process.argv.slice(2);
const cls = { 1: W1, 2: W2, 3: W3 }[repArg];
if (!cls) throw new Error(`replicas must be 1, 2 or 3, got ${repArg}`);
const cluster = `profw-${process.pid}`;
const bucket = storeArg === "kv" ? `profw_${process.pid}` : "-";
const hosts = Array.from({ length: 3 }, () =>
  fork(new URL("./write-host.mjs", import.meta.url), [servers, cluster, bucket], {
    execArgv: hostArgs,
    cwd: process.cwd(),
  }),
);
const ids = await Promise.all(
  hosts.map((h) => new Promise((r) => h.on("message", (m) => m.type === "ready" && r(m.id)))),
);
const c = await Sharding.connect({ servers, cluster, entities: writeEntities, logger: silentLogger });
const want = [...ids].sort().join();
while ([...c.node.members()].sort().join() !== want) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 500));
const cpu = (h) =>
  new Promise((r) => {
    const on = (m) => {
      if (m.type !== "cpu") return;
      h.off("message", on);
      r([m.v.user + m.v.system, m.w, m.v.system, m.copies[0], m.copies[1]]);
    };
    h.on("message", on);
    h.send("cpu");
  });
const nodesCpu = async () =>
  (await Promise.all(hosts.map(cpu))).reduce((a, b) => a.map((x, i) => x + b[i]), [0, 0, 0, 0, 0]);
const ask = (k) => c.ask(cls, k, "add", [1]);
const run = async (ms, conc) => (await closedLoop(ask, conc, ms)).done;
// Activate every entity first (as bench/replication does), so the run measures writes only.
for (let i = 0; i < KEYS.length; i += 64) await Promise.all(KEYS.slice(i, i + 64).map(ask));
await run(1000, Number(concArg));
// The join's hand-offs (stepwise) may still be moving partitions: the window would then hold
// pulls, pages and refills besides the writes. Wait until every node's hand-off counters hold
// still over half a second (at most 30 s).
const handoffs = (h) =>
  new Promise((r) => {
    const on = (m) => {
      if (m.type !== "handoffs") return;
      h.off("message", on);
      r(m.v);
    };
    h.on("message", on);
    h.send("handoffs");
  });
const settle = Date.now() + 30_000;
let last = "";
for (;;) {
  const now = (await Promise.all(hosts.map(handoffs))).join();
  if (now === last || Date.now() > settle) break;
  last = now;
  await run(500, Number(concArg));
}
// Profiling switches from the environment (not turbo tasks: these scripts run on their own).
const { MONITOR, NATS_PID } = process.env;
// With MONITOR=<nats-server monitoring URL>: messages and bytes per ask of each connection.
const connz = async () => {
  if (!MONITOR) return new Map();
  const r = await (await fetch(`${MONITOR}/connz?limit=1024`)).json();
  return new Map(r.connections.map((x) => [x.cid, x]));
};
// With NATS_PID=<nats-server's pid>: its CPU µs per ask (Linux /proc, 10 ms ticks).
const natsCpu = () => {
  if (!NATS_PID) return 0;
  const f = readFileSync(`/proc/${NATS_PID}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 1e4;
};
const z0 = await connz();
const ns0 = natsCpu();
const h0 = await nodesCpu();
const c0 = process.cpuUsage();
const t0 = performance.now();
const n = await run(Number(secs) * 1000, Number(concArg));
const cu = process.cpuUsage(c0);
const h1 = await nodesCpu();
const z1 = await connz();
const ns1 = natsCpu();
const h = h1[0] - h0[0];
const dt = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    replicas: Number(repArg),
    store: storeArg,
    rate: Math.round(n / dt),
    askerUs: +((cu.user + cu.system) / n).toFixed(2),
    nodesUs: +(h / n).toFixed(2),
    natsUs: +((ns1 - ns0) / n).toFixed(2),
    nodesSysUs: +((h1[2] - h0[2]) / n).toFixed(2),
    // With `-r ./bench/actors/profile/count-writes.cjs` among the node flags: socket writes per ask.
    copiesPerRequest: +((h1[3] - h0[3]) / Math.max(1, h1[4] - h0[4])).toFixed(2),
    nodeSocketWritesPerAsk: +((h1[1] - h0[1]) / n).toFixed(3),
  }),
);
for (const [cid, b] of z1) {
  const a = z0.get(cid);
  if (!a) continue;
  const d = (k) => +((b[k] - a[k]) / n).toFixed(3);
  if (b.in_msgs - a.in_msgs < n / 100) continue;
  console.log(
    JSON.stringify({
      conn: b.name,
      inMsgs: d("in_msgs"),
      outMsgs: d("out_msgs"),
      inB: d("in_bytes"),
      outB: d("out_bytes"),
    }),
  );
}
for (const h of hosts) h.send("close");
await c.close();
await Promise.all(hosts.map((h) => new Promise((r) => h.on("exit", r))));
