// The local ask on the built package: plain node, no tsx, no source condition, so
// `@keyhold/actors` resolves to packages/actors/dist (run `npm run build` first). Plain JS on
// purpose: nothing here goes through a TypeScript loader. Started by asks.ts.
// argv: servers, run ms, concurrency, rounds. Prints one JSON line: { rates: [...] }.
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

const [servers = "", runMs = "2000", conc = "64", roundsArg = "3"] = process.argv.slice(2);
const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${100_000 + i}`);

/** The same closed loop as load.ts: `concurrency` workers, the event loop turns every 5 ms. */
async function closedLoop(op, concurrency, durationMs) {
  let cursor = 0;
  let done = 0;
  let gate;
  let lastYield = performance.now();
  const t0 = performance.now();
  const end = t0 + durationMs;
  const turn = () =>
    (gate ??= new Promise((resolve) =>
      setImmediate(() => {
        gate = undefined;
        lastYield = performance.now();
        resolve();
      }),
    ));
  const worker = async () => {
    for (;;) {
      const now = performance.now();
      if (now >= end) return;
      if (now - lastYield >= 5) await turn();
      await op(KEYS[cursor++ % KEYS.length]);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done / ((performance.now() - t0) / 1000);
}

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
  for (let r = 0; r < Number(roundsArg); r++) rates.push(await closedLoop(op, Number(conc), Number(runMs)));
  const fastPathMissed = sharding.stats().router.retries;
  process.stdout.write(`${JSON.stringify({ rates, fastPathMissed })}\n`);
} finally {
  await sharding.close();
}
