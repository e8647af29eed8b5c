// `npm run sweep [-- pattern ...] [--seeds N] [--from-seed S] [--all] [--log-dir DIR]`: runs the
// simulated-bus property tests with many seeds, not the one fixed seed CI replays, one vitest run
// per seed over every chosen file (KH_PROPERTY_SEED, test/setup/properties.ts). Prints a table of
// files, seeds run and failing seeds, then one `SWEEP_JSON {...}` line; exits 1 when any seed failed.
// A failing seed's vitest output is kept (--log-dir, default a temporary directory): replay it
// with `KH_PROPERTY_SEED=<seed> npx vitest run <file>`, and keep it as an `examples` entry.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { fileVerdicts, parseSweepArgs, SweepArgError, seedList, selectFiles } from "./plan.js";

const ROOT = resolve(import.meta.dirname, "../..");

function testFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory() && e.name !== "node_modules") walk(p);
      else if (e.isFile() && e.name.endsWith(".test.ts")) out.push(relative(ROOT, p));
    }
  };
  for (const pkg of readdirSync(join(ROOT, "packages"))) {
    const dir = join(ROOT, "packages", pkg, "test");
    try {
      walk(dir);
    } catch {
      // A package without tests.
    }
  }
  return out;
}

function runSeed(
  files: readonly string[],
  seed: number,
  report: string,
): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    const env = { ...process.env, KH_PROPERTY_SEED: String(seed) };
    const child = spawn(
      "npx",
      ["vitest", "run", "--project", "unit", "--reporter=json", `--outputFile=${report}`, ...files],
      { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] },
    );
    const chunks: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => chunks.push(d));
    child.stderr.on("data", (d: Buffer) => chunks.push(d));
    child.on("close", (code) => done({ code: code ?? 1, output: Buffer.concat(chunks).toString("utf8") }));
  });
}

/** The failure messages of a vitest JSON report (where the json reporter puts them), for the log. */
function failureText(report: string): string {
  try {
    const r = JSON.parse(readFileSync(report, "utf8")) as {
      testResults?: {
        name?: string;
        message?: string;
        assertionResults?: { fullName?: string; failureMessages?: string[] }[];
      }[];
    };
    const parts: string[] = [];
    for (const f of r.testResults ?? []) {
      if (f.message) parts.push(`${f.name}: ${f.message}`);
      for (const a of f.assertionResults ?? [])
        if (a.failureMessages?.length)
          parts.push(`${f.name} > ${a.fullName}\n${a.failureMessages.join("\n")}`);
    }
    return parts.join("\n\n");
  } catch (err) {
    return `(no vitest report: ${String(err)})`;
  }
}

async function main(): Promise<number> {
  const args = parseSweepArgs(process.argv.slice(2));
  const files = selectFiles(testFiles(), (f) => readFileSync(join(ROOT, f), "utf8"), args);
  const seeds = seedList(args.seeds, args.fromSeed);
  const logDir = args.logDir ?? mkdtempSync(join(tmpdir(), "keyhold-sweep-"));
  mkdirSync(logDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "keyhold-sweep-report-"));
  const failing = new Map<string, { seed: number; tests: string[] }[]>(files.map((f) => [f, []]));
  const started = Date.now();
  console.log(`sweep: ${files.length} file(s) x ${seeds.length} seed(s); failing seeds' output in ${logDir}`);
  for (const [i, seed] of seeds.entries()) {
    const report = join(work, `${seed}.json`);
    const { code, output } = await runSeed(files, seed, report);
    let verdicts: Map<string, string[]>;
    try {
      verdicts = fileVerdicts(JSON.parse(readFileSync(report, "utf8")), ROOT);
    } catch (err) {
      // No report at all (vitest did not start): every file counts as failed for this seed.
      verdicts = new Map(files.map((f) => [f, [`(no vitest report: ${String(err)}; exit ${code})`]]));
    }
    const bad = files.filter((f) => (verdicts.get(f) ?? ["(not in the report)"]).length > 0);
    for (const f of bad) failing.get(f)!.push({ seed, tests: verdicts.get(f) ?? ["(not in the report)"] });
    if (bad.length > 0) writeFileSync(join(logDir, `seed-${seed}.log`), `${failureText(report)}\n${output}`);
    const s = ((Date.now() - started) / 1000).toFixed(0);
    console.log(
      `  seed ${seed} (${i + 1}/${seeds.length}, ${s} s): ${bad.length === 0 ? "ok" : `FAILED ${bad.join(", ")}`}`,
    );
  }
  rmSync(work, { recursive: true, force: true });
  const rows = files.map((f) => ({
    file: f,
    seeds: String(seeds.length),
    failed: String(failing.get(f)!.length),
    "failing seeds":
      failing
        .get(f)!
        .map((x) => x.seed)
        .join(" ") || "-",
  }));
  const cols = ["file", "seeds", "failed", "failing seeds"] as const;
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, j) => c.padEnd(width[j]!))
      .join("  ")
      .trimEnd();
  console.log(`\n${line(cols)}\n${line(width.map((w) => "-".repeat(w)))}`);
  for (const r of rows) console.log(line(cols.map((c) => r[c])));
  const total = [...failing.values()].reduce((n, x) => n + x.length, 0);
  console.log(
    `SWEEP_JSON ${JSON.stringify({
      seeds,
      seconds: Math.round((Date.now() - started) / 1000),
      files: Object.fromEntries([...failing].map(([f, x]) => [f, { runs: seeds.length, failures: x }])),
      logDir,
    })}`,
  );
  return total === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof SweepArgError ? `sweep: ${err.message}` : err);
    process.exit(2);
  },
);
