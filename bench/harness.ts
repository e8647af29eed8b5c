// The small harness every benchmark module uses: how a module reports figures, targets and
// tables, a throughput timer that resists dead-code elimination, and summary statistics.
import { performance } from "node:perf_hooks";

/** One measured number. `name` is unique in a run and stable across runs, for comparisons. */
export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
}

/** A figure checked against a threshold the issue sets. */
export interface Target {
  readonly name: string;
  readonly figure: string;
  readonly value: number;
  readonly op: ">=" | "<=";
  readonly threshold: number;
  readonly unit: string;
  readonly pass: boolean;
}

export type Row = Record<string, string | number>;

/** What a module gets to report with; the runner prints and collects. */
export interface BenchContext {
  /** BENCH_QUICK=1: small iteration counts for a CI smoke run. */
  readonly quick: boolean;
  /** Records a figure, named `<module>.<name>` in the JSON. */
  figure(name: string, value: number, unit: string): void;
  /** Records a pass/fail check of a value against a threshold and returns whether it passed. */
  target(
    name: string,
    figure: string,
    value: number,
    op: ">=" | "<=",
    threshold: number,
    unit: string,
  ): boolean;
  /** Prints a table (aligned text) under a title. */
  table(title: string, rows: readonly Row[], note?: string): void;
  /** Progress, to stderr so stdout holds only tables and the JSON line. */
  log(message: string): void;
  /** Extra run information for the JSON (e.g. the nats-server version). */
  info(key: string, value: string | number): void;
}

/** A benchmark module: `bench/<name>.ts` exports one as `bench`. */
export interface BenchModule {
  readonly name: string;
  readonly about: string;
  run(ctx: BenchContext): Promise<void>;
}

/** Formats rows as a left/right aligned text table (numbers right-aligned). */
export function formatTable(rows: readonly Row[]): string {
  if (rows.length === 0) return "(no rows)";
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((r) => columns.map((c) => cellText(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const numeric = columns.map((c) => rows.every((r) => r[c] === undefined || typeof r[c] === "number"));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(columns), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

function cellText(v: string | number | undefined): string {
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  return formatNumber(v);
}

/** Human-readable number: thousands separators, at most 3 significant decimals for small values. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { n: 0, median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { n: s.length, median, min: s[0]!, max: s[s.length - 1]! };
}

/**
 * A measured loop: runs the operation `count` times over `keys` (cycling) and writes each
 * result into `sink`. Each case is its own function literal so that its call site stays
 * monomorphic and V8 inlines the operation the way it would in an application's hot loop.
 */
export type OpLoop = (keys: readonly string[], count: number, sink: unknown[]) => void;

/** Power of two; results go to sink[i & SINK_MASK], which keeps them observable. */
export const SINK_SIZE = 1024;
export const SINK_MASK = SINK_SIZE - 1;

export interface ThroughputOptions {
  /** Timed runs; the median is reported. */
  readonly runs: number;
  /** Target duration of one run, ms. */
  readonly runMs: number;
  /** Untimed warm-up before the runs (lets V8 optimise), ms. */
  readonly warmupMs: number;
}

/**
 * Operations per second of each loop: median and spread over `runs` timed runs of about `runMs`.
 * The runs go round-robin over the loops, so a burst of other work on the machine hits every
 * loop a little instead of one loop a lot.
 */
export function throughput<K extends string>(
  loops: Readonly<Record<K, OpLoop>>,
  keys: readonly string[],
  opts: ThroughputOptions,
): Record<K, Summary> {
  const names = Object.keys(loops) as K[];
  const sink: unknown[] = new Array(SINK_SIZE).fill(undefined);
  const counts = names.map((name) => calibrate(loops[name], keys, sink, opts));
  const rates = names.map((): number[] => []);
  for (let r = 0; r < opts.runs; r++) {
    names.forEach((name, i) => {
      const count = counts[i]!;
      rates[i]!.push((count / timeOnce(loops[name], keys, count, sink)) * 1000);
    });
  }
  consume(sink);
  return Object.fromEntries(names.map((name, i) => [name, summarize(rates[i]!)])) as Record<K, Summary>;
}

/** Warms `loop` up and returns the count of operations that takes about `runMs`. */
function calibrate(loop: OpLoop, keys: readonly string[], sink: unknown[], opts: ThroughputOptions): number {
  // Grow the count until one run is long enough to time, warm up, then scale to runMs.
  let count = 1000;
  let elapsed = timeOnce(loop, keys, count, sink);
  while (elapsed < 10) {
    count *= 4;
    elapsed = timeOnce(loop, keys, count, sink);
  }
  const warmEnd = performance.now() + opts.warmupMs;
  while (performance.now() < warmEnd) elapsed = timeOnce(loop, keys, count, sink);
  return Math.max(1, Math.round((count * opts.runMs) / Math.max(elapsed, 0.001)));
}

function timeOnce(loop: OpLoop, keys: readonly string[], count: number, sink: unknown[]): number {
  const t0 = performance.now();
  loop(keys, count, sink);
  return performance.now() - t0;
}

/** Reads the sink so its stores are observable: an empty sink means the loop did nothing. */
function consume(sink: readonly unknown[]): void {
  if (sink.every((v) => v === undefined)) throw new Error("benchmark loop produced no results");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
