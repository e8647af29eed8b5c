// The local ask on the built package: plain node, no tsx, no source condition, so
// `@keyhold/actors` resolves to packages/actors/dist (run `npm run build` first). Plain JS on
// purpose: nothing here goes through a TypeScript loader. Started by asks.ts.
// argv: servers, run ms, concurrency, rounds. Prints one JSON line: { rates, cpuUs, noGuard }.
// Each round runs twice, with the turn guard (turn-guard.ts) and with its `pass` replaced by one
// that always lets the hand-over through: the guard's cost, measured in the same process and
// run. The closed loop turns the event loop every 5 ms by itself, so nothing starves without it.
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { Counter, closedLoop, KEYS } from "./built-support.mjs";

const [servers = "", runMs = "2000", conc = "64", roundsArg = "3"] = process.argv.slice(2);

// The module instance the package loaded (the same file), not a copy.
const guardModule = new URL("../../packages/actors/dist/turn-guard.js", import.meta.url);
const { TurnGuard } = await import(guardModule.href);
const guardedPass = TurnGuard.prototype.pass;
const unguardedPass = () => true;

const sharding = await Sharding.start({
  servers,
  cluster: `bench-built-${process.pid}`,
  entities: [Counter],
  logger: silentLogger,
  idleMs: 0,
});
try {
  const deadline = Date.now() + 15_000;
  while (!KEYS.every((k) => sharding.node.place(k) === sharding.node.id)) {
    if (Date.now() > deadline) throw new Error("the node did not come to own every key");
    await new Promise((r) => setTimeout(r, 20));
  }
  const op = (k) => sharding.ask(Counter, k, "add", [1]);
  const round = async (guard) => {
    TurnGuard.prototype.pass = guard ? guardedPass : unguardedPass;
    const cpu0 = process.cpuUsage();
    const { done, seconds } = await closedLoop(op, Number(conc), Number(runMs));
    const cpu = process.cpuUsage(cpu0);
    return { rate: done / seconds, cpuUs: (cpu.user + cpu.system) / done };
  };
  await closedLoop(op, 256, 1_000); // activate and warm up
  await round(false);
  const rates = [];
  const cpuUs = [];
  const noGuard = { rates: [], cpuUs: [] };
  for (let r = 0; r < Number(roundsArg); r++) {
    // Alternate which goes first, so that a burst of other work does not always hit one.
    const order = r % 2 === 0 ? [true, false] : [false, true];
    for (const guard of order) {
      const x = await round(guard);
      (guard ? rates : noGuard.rates).push(x.rate);
      (guard ? cpuUs : noGuard.cpuUs).push(x.cpuUs);
    }
  }
  TurnGuard.prototype.pass = guardedPass;
  const fastPathMissed = sharding.stats().router.retries;
  process.stdout.write(`${JSON.stringify({ rates, cpuUs, noGuard, fastPathMissed })}\n`);
} finally {
  await sharding.close();
}
