// Reproduces the known verdict of every recorded Jepsen etcd history (test/fixtures/jepsen-etcd,
// copied from ../shared/histories; verdicts.tsv gives `true` for linearizable).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { checkLinearizable, parseJepsenLog, registerModel } from "@keyhold/testing";
import { describe, expect, it } from "vitest";

const dir = join(import.meta.dirname, "fixtures", "jepsen-etcd");
const verdicts = readFileSync(join(dir, "verdicts.tsv"), "utf8")
  .trim()
  .split("\n")
  .slice(1)
  .map((line) => {
    const [log = "", verdict = ""] = line.split("\t");
    return { log, linearizable: verdict === "true" };
  });

describe("linearizability checker on the Jepsen etcd histories", () => {
  it("has a verdict for each of the 82 logs", () => {
    expect(verdicts).toHaveLength(82);
    expect(
      readdirSync(dir)
        .filter((f) => f.endsWith(".log"))
        .sort(),
    ).toEqual(verdicts.map((v) => v.log).sort());
  });

  it("reproduces every verdict", () => {
    const model = registerModel();
    const rows: string[] = [];
    let total = 0;
    let slowest = { log: "", ms: 0 };
    const wrong: string[] = [];
    for (const { log, linearizable } of verdicts) {
      const ops = parseJepsenLog(readFileSync(join(dir, log), "utf8"));
      const r = checkLinearizable(ops, model, { timeoutMs: 20_000 });
      total += r.elapsedMs;
      if (r.elapsedMs > slowest.ms) slowest = { log, ms: r.elapsedMs };
      const expected = linearizable ? "linearizable" : "not-linearizable";
      if (r.verdict !== expected) wrong.push(`${log}: expected ${expected}, got ${r.verdict}`);
      rows.push(
        `${log} ${ops.length} ops ${r.verdict} ${r.keys[0]?.steps ?? 0} steps ${r.elapsedMs.toFixed(1)} ms`,
      );
    }
    console.log(
      `82 Jepsen etcd histories checked in ${total.toFixed(0)} ms (slowest ${slowest.log} ${slowest.ms.toFixed(1)} ms)`,
    );
    expect(wrong).toEqual([]);
  });

  it("reports unknown, not a hang, when the search budget runs out", () => {
    const ops = parseJepsenLog(readFileSync(join(dir, "etcd_002.log"), "utf8"));
    const r = checkLinearizable(ops, registerModel(), { maxSteps: 10 });
    expect(r.verdict).toBe("unknown");
    expect(r.keys[0]?.steps).toBe(11);
  });
});
