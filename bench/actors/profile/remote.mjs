// Profiling driver for the remote ask on the built package (plain node, no tsx): a
// Sharding.connect client in this process asks Counter entities hosted by a child (host.mjs) in a
// closed loop, and prints asks/s and CPU µs per ask on each side. Run `npm run build` first, from
// the repository root:
//   nats-server -p 14333 &
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/actors/profile/remote.mjs nats://127.0.0.1:14333 6 256 \
//     --cpu-prof --cpu-prof-dir=/tmp/prof
//   node bench/actors/profile/top.mjs /tmp/prof/<file>.cpuprofile 40
// argv: servers, seconds, concurrency, then node flags for the host child; a `batchMax=N` among
// them sets the client's batchMaxEntries instead (default: the option's default).
import { fork } from "node:child_process";
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { Counter, closedLoop, KEYS } from "../built-support.mjs";

const [servers, secs = "5", concArg = "256", ...rest] = process.argv.slice(2);
const hostArgs = rest.filter((a) => !a.startsWith("batchMax="));
const batchMax = rest.find((a) => a.startsWith("batchMax="))?.slice("batchMax=".length);
const cluster = `prof-${process.pid}`;
const host = fork(new URL("./host.mjs", import.meta.url), [servers, cluster], {
  execArgv: hostArgs,
  cwd: process.cwd(),
});
const ready = await new Promise((r) => host.on("message", (m) => m.type === "ready" && r(m.id)));
const c = await Sharding.connect({
  servers,
  cluster,
  entities: [Counter],
  logger: silentLogger,
  ...(batchMax ? { batchMaxEntries: Number(batchMax) } : {}),
});
while (!KEYS.every((k) => c.node.place(k) === ready)) await new Promise((r) => setTimeout(r, 50));
const hostCpu = () =>
  new Promise((r) => {
    host.once("message", (m) => r(m.v.user + m.v.system));
    host.send("cpu");
  });
const ask = (k) => c.ask(Counter, k, "add", [1]);
const run = async (ms, conc) => (await closedLoop(ask, conc, ms)).done;
await run(1500, Number(concArg));
const h0 = await hostCpu();
const c0 = process.cpuUsage();
const t0 = performance.now();
const n = await run(Number(secs) * 1000, Number(concArg));
const cu = process.cpuUsage(c0);
const h = (await hostCpu()) - h0;
const dt = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    rate: Math.round(n / dt),
    askerUs: +((cu.user + cu.system) / n).toFixed(2),
    ownerUs: +(h / n).toFixed(2),
    batches: c.stats().batches,
  }),
);
host.send("close");
await c.close();
await new Promise((r) => host.on("exit", r));
