// The local ask measured on the built package with plain node (local-built.mjs), beside the tsx
// figure of asks.ts: what a user running `node app.js` against the published package gets.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { NatsServer } from "@keyhold/testing";
import type { BenchModule, Row } from "../harness.js";
import { summarize } from "../harness.js";

const DIST = fileURLToPath(new URL("../../packages/actors/dist/index.js", import.meta.url));
const CHILD = fileURLToPath(new URL("./local-built.mjs", import.meta.url));

/** What the child measured: per round, with the turn guard and without it (its `pass` always true). */
export interface BuiltRates {
  readonly rates: number[];
  /** CPU µs (user + system) per ask, per round. */
  readonly cpuUs: number[];
  readonly noGuard: { readonly rates: number[]; readonly cpuUs: number[] };
  readonly fastPathMissed: number;
}

/** Rates (asks/s) of each round at `concurrency`; throws when the package is not built. */
export async function localBuiltRates(
  servers: string,
  runMs: number,
  concurrency: number,
  rounds: number,
): Promise<BuiltRates> {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` before the bench`);
  // No --import tsx and no --conditions=@keyhold/source: the exports map resolves to dist/.
  const child = spawn(
    process.execPath,
    [CHILD, servers, String(runMs), String(concurrency), String(rounds)],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NODE_OPTIONS: "" },
    },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`the built-package bench exited with ${code}: ${err.slice(0, 2000)}`);
  return JSON.parse(out.trim().split("\n").pop() ?? "{}") as BuiltRates;
}

/**
 * The built-package rows of `actors` alone, for iterating on the local path:
 * `npm run build && npm run bench -- actors-local-built` (concurrency 64 and 256).
 */
export const bench: BenchModule = {
  name: "actors-local-built",
  about: "the local ask on the built package under plain node (a part of `actors`)",
  async run(ctx) {
    await using server = await NatsServer.start();
    const plan = ctx.quick ? { runMs: 400, rounds: 1 } : { runMs: 2_000, rounds: 3 };
    const rows: Row[] = [];
    for (const conc of [64, 256] as const) {
      const b = await localBuiltRates(server.url, plan.runMs, conc, plan.rounds);
      const rate = summarize(b.rates).median;
      const cpu = summarize(b.cpuUs).median;
      ctx.figure(`localBuilt[${conc}].rate`, rate, "asks/s");
      ctx.figure(`localBuilt[${conc}].cpuUs`, cpu, "us");
      rows.push({
        concurrency: conc,
        "per s": rate,
        "CPU us/ask": cpu,
        "fast path missed": b.fastPathMissed,
      });
    }
    ctx.table(`Local ask, built package, plain node, ${plan.rounds} x ${plan.runMs} ms per cell`, rows);
  },
};
