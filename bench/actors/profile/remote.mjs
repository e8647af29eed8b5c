// Profiling driver for the remote ask on the built package (plain node, no tsx): a
// Sharding.connect client in this process asks Counter entities hosted by a child (host.mjs) in a
// closed loop, and prints asks/s and CPU µs per ask on each side. Run `npm run build` first, from
// the repository root:
//   nats-server -p 14333 &
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/actors/profile/remote.mjs nats://127.0.0.1:14333 6 256 \
//     --cpu-prof --cpu-prof-dir=/tmp/prof
//   node bench/actors/profile/top.mjs /tmp/prof/<file>.cpuprofile 40
// argv: servers, seconds, concurrency, then node flags for the host child.
import { fork } from "node:child_process";
import { Entity, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";

class Counter extends Entity {
  static type = "counter";
  initialState() {
    return { n: 0 };
  }
  add(by) {
    this.state.n += by;
    return this.state.n;
  }
}
const [servers, secs = "5", concArg = "256", ...hostArgs] = process.argv.slice(2);
const cluster = `prof-${process.pid}`;
const host = fork(new URL("./host.mjs", import.meta.url), [servers, cluster], {
  execArgv: hostArgs,
  cwd: process.cwd(),
});
const ready = await new Promise((r) => host.on("message", (m) => m.type === "ready" && r(m.id)));
const c = await Sharding.connect({ servers, cluster, entities: [Counter], logger: silentLogger });
const keys = Array.from({ length: 10000 }, (_, i) => `user-${100000 + i}`);
while (!keys.every((k) => c.node.place(k) === ready)) await new Promise((r) => setTimeout(r, 50));
const hostCpu = () =>
  new Promise((r) => {
    host.once("message", (m) => r(m.v.user + m.v.system));
    host.send("cpu");
  });
async function run(ms, conc) {
  let cursor = 0,
    done = 0;
  const end = performance.now() + ms;
  let last = performance.now();
  let gate;
  const turn = () =>
    (gate ??= new Promise((r) =>
      setImmediate(() => {
        gate = undefined;
        last = performance.now();
        r();
      }),
    ));
  const w = async () => {
    while (performance.now() < end) {
      if (performance.now() - last > 5) await turn();
      await c.ask(Counter, keys[cursor++ % keys.length], "add", [1]);
      done++;
    }
  };
  await Promise.all(Array.from({ length: conc }, w));
  return done;
}
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
