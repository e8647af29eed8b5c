// The pure part of `npm run sweep`: its arguments, which files it runs, the seeds, and how a
// vitest JSON report becomes per-file verdicts. sweep.ts spawns vitest; this is what a test checks.

export interface SweepArgs {
  /** Substrings of file paths; empty = every default file. */
  readonly patterns: readonly string[];
  readonly seeds: number;
  /** The first seed; the rest follow it. Undefined: random. */
  readonly fromSeed: number | undefined;
  /** Every file with a fast-check property, not only `*.property.test.ts`. */
  readonly all: boolean;
  /** Where each failing seed's vitest output is written. */
  readonly logDir: string | undefined;
}

export class SweepArgError extends Error {
  override readonly name = "SweepArgError";
}

const USAGE = "usage: npm run sweep -- [pattern ...] [--seeds N] [--from-seed S] [--all] [--log-dir DIR]";

function intArg(option: string, value: string | undefined, min: number, max: number): number {
  if (value === undefined) throw new SweepArgError(`${option} needs a value (${USAGE})`);
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new SweepArgError(
      `${option} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  return n;
}

export function parseSweepArgs(argv: readonly string[]): SweepArgs {
  const patterns: string[] = [];
  let seeds = 20;
  let fromSeed: number | undefined;
  let all = false;
  let logDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--seeds") seeds = intArg("--seeds", argv[++i], 1, 100_000);
    else if (a === "--from-seed") fromSeed = intArg("--from-seed", argv[++i], 1, 2 ** 31 - 1);
    else if (a === "--all") all = true;
    else if (a === "--log-dir") {
      logDir = argv[++i];
      if (logDir === undefined || logDir.startsWith("--"))
        throw new SweepArgError(`--log-dir needs a directory (${USAGE})`);
    } else if (a.startsWith("--")) throw new SweepArgError(`unknown option ${JSON.stringify(a)} (${USAGE})`);
    else patterns.push(a);
  }
  return { patterns, seeds, fromSeed, all, logDir };
}

/** Whether a test file's source holds a fast-check property. */
export function hasProperty(source: string): boolean {
  return /\bfc\.assert\(/.test(source);
}

/**
 * The files to run, from every test file path and a reader of its source: `*.property.test.ts`
 * files (or, with `all`, any file with a property) whose path contains one of the patterns.
 * Integration files are never swept (their timing is real, not a seed's).
 */
export function selectFiles(
  files: readonly string[],
  read: (file: string) => string,
  args: Pick<SweepArgs, "patterns" | "all">,
): string[] {
  const chosen = files
    .filter((f) => !f.endsWith(".integration.test.ts"))
    .filter((f) =>
      args.all ? hasProperty(read(f)) : f.endsWith(".property.test.ts") && hasProperty(read(f)),
    )
    .filter((f) => args.patterns.length === 0 || args.patterns.some((p) => f.includes(p)))
    .sort();
  if (chosen.length === 0)
    throw new SweepArgError(
      `no property test file matches ${args.patterns.length === 0 ? "(none given)" : args.patterns.map((p) => JSON.stringify(p)).join(", ")}${args.all ? "" : " (add --all to look beyond *.property.test.ts)"}`,
    );
  return chosen;
}

/** `count` seeds from `from` on, or random 31-bit positive ones (distinct). */
export function seedList(
  count: number,
  from: number | undefined,
  random: () => number = Math.random,
): number[] {
  if (from !== undefined)
    return Array.from({ length: count }, (_, i) => ((from - 1 + i) % (2 ** 31 - 1)) + 1);
  const out = new Set<number>();
  while (out.size < count) out.add(1 + Math.floor(random() * (2 ** 31 - 2)));
  return [...out];
}

/** What a vitest JSON report says of each file: passed, or its failing tests' names. */
export function fileVerdicts(report: unknown, root: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const results = (report as { testResults?: unknown })?.testResults;
  if (!Array.isArray(results)) throw new Error("not a vitest JSON report: no testResults array");
  for (const r of results as { name?: unknown; status?: unknown; assertionResults?: unknown }[]) {
    if (typeof r.name !== "string") continue;
    const file = r.name.startsWith(`${root}/`) ? r.name.slice(root.length + 1) : r.name;
    const failed = Array.isArray(r.assertionResults)
      ? (r.assertionResults as { status?: unknown; fullName?: unknown }[])
          .filter((a) => a.status === "failed")
          .map((a) => String(a.fullName))
      : [];
    // A file that failed outside a test (an import error, a hook) has no failed assertion.
    if (r.status === "failed" && failed.length === 0) failed.push("(the file failed outside its tests)");
    out.set(file, failed);
  }
  return out;
}
