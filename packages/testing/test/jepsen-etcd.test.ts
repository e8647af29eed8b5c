// Reproduces the known verdict of every recorded Jepsen etcd history (test/fixtures/jepsen-etcd,
// copied from ../shared/histories; verdicts.tsv gives `true` for linearizable).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { checkLinearizable, InvalidHistoryError, parseJepsenLog, registerModel } from "@keyhold/testing";
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

  it("reads both tab- and space-separated lines, and names the line it cannot read", () => {
    const ops = parseJepsenLog(
      "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\nINFO  jepsen.util - 2   :invoke :read   nil\n" +
        "INFO  jepsen.util - 2   :fail   :read   :timed-out\nINFO  jepsen.util - 1\t:info\t:cas\t:timed-out\n",
    );
    expect(ops).toEqual([
      {
        id: 0,
        process: "1",
        key: "r",
        f: "cas",
        input: [1, 2],
        output: undefined,
        status: "info",
        invokedAt: 0,
        completedAt: Number.POSITIVE_INFINITY,
      },
    ]);
    const bad = () =>
      parseJepsenLog("INFO  jepsen.util - 1\t:invoke\t:read\tnil\nINFO  jepsen.util - 1\t:ok\t:write\t3\n");
    expect(bad).toThrow(InvalidHistoryError);
    expect(bad).toThrow(/line 2: process 1 invoked read but completed write/);
    try {
      bad();
    } catch (err) {
      expect((err as InvalidHistoryError).code).toBe("KH_INVALID_HISTORY");
      expect((err as InvalidHistoryError).line).toBe(2);
    }
  });
});
