// The targets of issue 10 for replicated and stored writes, from the cells of one run of
// asks.ts (side by side, round-robin): replicas 3 and the KV store against replicas 1, and one
// hot key with replicas 3 with group commit against the same without it (`groupCommit: false`).
// Each ratio is the median over rounds of that round's pair, so both sides share the load.
import { type BenchContext, type Row, summarize } from "../harness.js";
import type { Case, Cell } from "./cost-model.js";

const CONCURRENCY = 64;

export function groupCommitTargets(ctx: BenchContext, get: (name: Case, conc: number) => Cell[]): void {
  const ratio = (a: Case, b: Case) => {
    const x = get(a, CONCURRENCY);
    const y = get(b, CONCURRENCY);
    return summarize(x.map((c, i) => c.run.rate / y[i]!.run.rate)).median;
  };
  const rate = (name: Case) => summarize(get(name, CONCURRENCY).map((c) => c.run.rate)).median;
  const checks: [string, Case, Case, number][] = [
    ["replicas 3 / replicas 1", "replicas3", "replicas1", 0.5],
    ["KV store / replicas 1", "kv", "replicas1", 0.5],
    ["hot key r3: group commit / without", "hot3", "hot3NoGc", 5],
  ];
  const rows: Row[] = checks.map(([label, a, b, threshold]) => {
    const value = ratio(a, b);
    const fig = `ratio.${a}Over${b[0]!.toUpperCase()}${b.slice(1)}[${CONCURRENCY}]`;
    ctx.figure(fig, value, "x");
    const pass = ctx.target(label, fig, value, ">=", threshold, "x");
    return {
      ratio: label,
      "per s": rate(a),
      "vs per s": rate(b),
      "x (median of rounds)": value,
      target: `>= ${threshold}x`,
      pass: pass ? "yes" : "NO",
    };
  });
  ctx.table(
    `Group commit and copy batching: ratios at concurrency ${CONCURRENCY} (issue 10 targets)`,
    rows,
    [
      "Each ratio = median over rounds of (rate of the case / rate of the other case in the same round).",
      "Hot key: every worker asks one replicas-3 entity; 'without' is the same cluster shape with",
      "groupCommit: false, where each message waits for its own replica round trip.",
    ].join("\n"),
  );
}
