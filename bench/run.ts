// `npm run bench [-- <module>...]`: runs the benchmark modules, prints a table per result and ends
// with one `BENCH_JSON {...}` line holding every figure, the targets and the machine. BENCH_QUICK=1
// (or --quick) runs small iteration counts for a CI smoke test.
import { cpus, loadavg, platform, release, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import type { BenchContext, BenchModule, Figure, Row, Target } from "./harness.js";
import { formatNumber, formatTable } from "./harness.js";

// Adding a benchmark module is one line here; modules load lazily, so selecting one by name
// does not load the others.
const MODULES: Record<string, () => Promise<{ bench: BenchModule }>> = {
  core: () => import("./core.js"),
  actors: () => import("./actors.js"),
  replication: () => import("./replication.js"),
  reminders: () => import("./actors/reminders.js"),
  lease: () => import("./lease.js"),
  background: () => import("./background.js"),
  failover: () => import("./failover.js"),
  epochs: () => import("./actors/epochs.js"),
  "actors-local-built": () => import("./actors/built.js"),
  "actors-read-only": () => import("./actors/read-only.js"),
};

interface ModuleResult {
  readonly name: string;
  readonly seconds: number;
  readonly error?: string;
}

function parseArgs(argv: readonly string[]): { names: string[]; quick: boolean } {
  const quick = argv.includes("--quick") || ["1", "true", "yes"].includes(process.env.BENCH_QUICK ?? "");
  const names = argv.filter((a) => !a.startsWith("--"));
  const unknown = names.filter((n) => !(n in MODULES));
  if (unknown.length > 0) {
    throw new Error(
      `unknown benchmark module ${unknown.map((n) => `"${n}"`).join(", ")}; ` +
        `available: ${Object.keys(MODULES).join(", ")}`,
    );
  }
  return { names: names.length > 0 ? [...new Set(names)] : Object.keys(MODULES), quick };
}

function machine(): Record<string, string | number> {
  const cpu = cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: `${platform()} ${release()}`,
    arch: process.arch,
    cpuModel: cpu[0]?.model.trim() ?? "unknown",
    cores: cpu.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  };
}

function load(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}

async function main(): Promise<number> {
  const { names, quick } = parseArgs(process.argv.slice(2));
  const figures: Figure[] = [];
  const targets: Target[] = [];
  const info: Record<string, string | number> = {};
  const results: ModuleResult[] = [];
  const startedAt = new Date().toISOString();
  const loadBefore = load();
  const mach = machine();
  process.stdout.write(
    `Keyhold benchmarks (${quick ? "quick" : "full"}): ${names.join(", ")}\n` +
      `${mach.cpuModel} x${mach.cores}, Node ${mach.node}, load average ${loadBefore.join(" ")}\n`,
  );

  for (const name of names) {
    const loader = MODULES[name]!;
    const mod = (await loader()).bench;
    const ctx: BenchContext = {
      quick,
      figure(fig, value, unit) {
        figures.push({ name: `${name}.${fig}`, value: round(value), unit });
      },
      target(title, fig, value, op, threshold, unit) {
        const pass = op === ">=" ? value >= threshold : value <= threshold;
        targets.push({
          name: title,
          figure: `${name}.${fig}`,
          value: round(value),
          op,
          threshold,
          unit,
          pass,
        });
        return pass;
      },
      table(title, rows, note) {
        process.stdout.write(`\n${title}\n${formatTable(rows)}\n${note ? `${note}\n` : ""}`);
      },
      log(message) {
        process.stderr.write(`[bench ${name}] ${message}\n`);
      },
      info(key, value) {
        info[`${name}.${key}`] = value;
      },
    };
    process.stdout.write(`\n== ${mod.name}: ${mod.about}\n`);
    const t0 = performance.now();
    try {
      await mod.run(ctx);
      results.push({ name, seconds: round((performance.now() - t0) / 1000) });
    } catch (err) {
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`[bench ${name}] failed: ${message}\n`);
      results.push({ name, seconds: round((performance.now() - t0) / 1000), error: message });
    }
  }

  if (targets.length > 0) {
    const rows: Row[] = targets.map((t) => ({
      target: t.name,
      value: t.value,
      rule: `${t.op} ${formatNumber(t.threshold)} ${t.unit}`,
      result: t.pass ? "PASS" : "FAIL",
    }));
    process.stdout.write(`\nTargets\n${formatTable(rows)}\n`);
  }

  const loadAfter = load();
  const json = {
    startedAt,
    mode: quick ? "quick" : "full",
    machine: { ...mach, loadBefore, loadAfter },
    modules: results,
    info,
    figures,
    targets,
    allTargetsPass: targets.every((t) => t.pass),
  };
  process.stdout.write(`\nBENCH_JSON ${JSON.stringify(json)}\n`);
  return results.some((r) => r.error !== undefined) ? 1 : 0;
}

/** Keeps the JSON readable: 4 significant digits below 1000, integers above. */
function round(v: number): number {
  if (!Number.isFinite(v)) return v;
  return Math.abs(v) >= 1000 ? Math.round(v) : Number(v.toPrecision(4));
}

main().then(
  (code) => {
    // Benchmarks may leave sockets or child handles behind on failure; do not hang CI.
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
