// The local ask on the built package: plain node, no tsx, no source condition, so
// `@keyhold/actors` resolves to packages/actors/dist (run `npm run build` first). Plain JS on
// purpose: nothing here goes through a TypeScript loader. Started by asks.ts.
// argv: servers, run ms, concurrency, rounds. Prints one JSON line: { rates: [...] }.
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { Counter, closedLoop, KEYS } from "./built-support.mjs";

const [servers = "", runMs = "2000", conc = "64", roundsArg = "3"] = process.argv.slice(2);

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
  await closedLoop(op, 256, 1_000); // activate and warm up
  const rates = [];
  for (let r = 0; r < Number(roundsArg); r++) {
    const { done, seconds } = await closedLoop(op, Number(conc), Number(runMs));
    rates.push(done / seconds);
  }
  const fastPathMissed = sharding.stats().router.retries;
  process.stdout.write(`${JSON.stringify({ rates, fastPathMissed })}\n`);
} finally {
  await sharding.close();
}
