// The history recorder and the checker on small hand-made histories whose verdicts are obvious.
import {
  checkLinearizable,
  counterModel,
  HistoryRecorder,
  mergeHistories,
  type Operation,
  type OpStatus,
  registerModel,
} from "@keyhold/testing";
import { describe, expect, it } from "vitest";

/** op(process, f, input, output, from, to, status) on key "x" unless given. */
function op(
  id: number,
  f: string,
  io: { in?: unknown; out?: unknown },
  from: number,
  to: number,
  status: OpStatus = "ok",
  key = "x",
): Operation {
  return {
    id,
    process: `p${id}`,
    key,
    f,
    input: io.in,
    output: io.out,
    status,
    invokedAt: from,
    completedAt: status === "info" ? Number.POSITIVE_INFINITY : to,
  };
}

describe("HistoryRecorder", () => {
  it("records invocations and completions with their times and statuses", async () => {
    let now = 0;
    const rec = new HistoryRecorder({ clock: () => ++now });
    const w = rec.invoke("c1", "k", "write", 1);
    const r = rec.invoke("c2", "k", "read");
    w.ok();
    r.ok(1);
    expect(() => r.ok(2)).toThrow(/completed twice/);
    const failed = await rec.run(
      "c1",
      "k",
      "cas",
      [2, 3],
      async () => {
        throw new Error("precondition");
      },
      { classify: () => "fail" },
    );
    const unknown = await rec.run("c2", "k", "write", 4, async () => {
      throw new Error("timeout");
    });
    const ok = await rec.run("c1", "k", "read", undefined, async () => ({ value: 1 }), {
      output: (x) => x.value,
    });
    rec.invoke("c3", "k", "write", 5); // never completed
    expect([failed.status, unknown.status, ok.status]).toEqual(["fail", "info", "ok"]);
    const ops = rec.operations();
    expect(ops.map((o) => [o.f, o.status, o.output])).toEqual([
      ["write", "ok", undefined],
      ["read", "ok", 1],
      ["cas", "fail", undefined],
      ["write", "info", undefined],
      ["read", "ok", 1],
      ["write", "info", undefined],
    ]);
    expect(ops[0]).toMatchObject({ invokedAt: 1, completedAt: 3 });
    expect(ops[3]?.completedAt).toBe(Number.POSITIVE_INFINITY);
    expect(rec.events().map((e) => e.type)).toEqual([
      "invoke",
      "invoke",
      "ok",
      "ok",
      "invoke",
      "fail",
      "invoke",
      "info",
      "invoke",
      "ok",
      "invoke",
    ]);
    expect(rec.events()[5]?.value).toBe("Error: precondition");
    expect(checkLinearizable(ops, registerModel()).verdict).toBe("linearizable");
  });

  it("merges recorders that share a time base", () => {
    let now = 0;
    const clock = () => ++now;
    const a = new HistoryRecorder({ clock });
    const b = new HistoryRecorder({ clock });
    a.invoke("a", "k", "write", 1).ok();
    b.invoke("b", "k", "read").ok(1);
    a.invoke("a", "k", "read").ok(1);
    const merged = mergeHistories(a.operations(), b.operations());
    expect(merged.map((o) => [o.id, o.process])).toEqual([
      [0, "a"],
      [1, "b"],
      [2, "a"],
    ]);
  });
});

describe("checkLinearizable (register)", () => {
  const model = registerModel();
  it("accepts a read concurrent with a write returning either value", () => {
    for (const seen of [null, 1]) {
      const h = [op(0, "write", { in: 1 }, 0, 10), op(1, "read", { out: seen }, 5, 15)];
      expect(checkLinearizable(h, model).verdict).toBe("linearizable");
    }
  });

  it("rejects a stale read after a completed write", () => {
    const h = [
      op(0, "write", { in: 1 }, 0, 10),
      op(1, "write", { in: 2 }, 11, 20),
      op(2, "read", { out: 1 }, 21, 30),
    ];
    const r = checkLinearizable(h, model);
    expect(r.verdict).toBe("not-linearizable");
    expect(r.keys[0]?.stuckAt?.id).toBe(2);
    expect(r.keys[0]?.longestPrefix).toEqual([0, 1]);
  });

  it("lets an unknown write take effect late, or never", () => {
    const late = [
      op(0, "write", { in: 7 }, 0, 0, "info"),
      op(1, "read", { out: null }, 5, 6),
      op(2, "read", { out: 7 }, 50, 60),
    ];
    expect(checkLinearizable(late, model).verdict).toBe("linearizable");
    const never = [op(0, "write", { in: 7 }, 0, 0, "info"), op(1, "read", { out: null }, 50, 60)];
    expect(checkLinearizable(never, model).verdict).toBe("linearizable");
    // ...but not before it was invoked.
    const early = [op(0, "read", { out: 7 }, 0, 5), op(1, "write", { in: 7 }, 10, 0, "info")];
    expect(checkLinearizable(early, model).verdict).toBe("not-linearizable");
  });

  it("reads a failed cas as a mismatch by default, and as nothing with casFail: no-effect", () => {
    const h = [op(0, "write", { in: 1 }, 0, 10), op(1, "cas", { in: [1, 2] }, 20, 30, "fail")];
    expect(checkLinearizable(h, model).verdict).toBe("not-linearizable");
    expect(checkLinearizable(h, registerModel({ casFail: "no-effect" })).verdict).toBe("linearizable");
    const swapped = [
      op(0, "write", { in: 1 }, 0, 10),
      op(1, "cas", { in: [1, 2] }, 20, 30),
      op(2, "read", { out: 2 }, 31, 40),
    ];
    expect(checkLinearizable(swapped, model).verdict).toBe("linearizable");
  });

  it("checks keys independently", () => {
    const h = [
      op(0, "write", { in: 1 }, 0, 10, "ok", "a"),
      op(1, "read", { out: 1 }, 20, 30, "ok", "b"),
      op(2, "read", { out: 1 }, 20, 30, "ok", "a"),
    ];
    const r = checkLinearizable(h, model);
    expect(r.verdict).toBe("not-linearizable");
    expect(r.keys.map((k) => [k.key, k.verdict])).toEqual([
      ["a", "linearizable"],
      ["b", "not-linearizable"],
    ]);
  });

  it("validates its options", () => {
    expect(() => checkLinearizable([], model, { maxSteps: 0 })).toThrow(/`maxSteps`.*got 0/);
    expect(() => checkLinearizable([], model, { timeoutMs: -1 })).toThrow(/`timeoutMs`.*got -1/);
    expect(() => registerModel({ casFail: "maybe" as "mismatch" })).toThrow(/`casFail`.*maybe/);
    expect(() => checkLinearizable([op(0, "write", { in: 1 }, 10, 5)], model)).toThrow(/op 0/);
    expect(() => checkLinearizable([op(0, "write", { in: 1 }, Number.NaN, 5)], model)).toThrow(/invokedAt/);
  });

  it("answers unknown when the step or time budget runs out", () => {
    // 10 concurrent writes of distinct values and a read of a value none wrote: the search
    // must visit every (subset, last value) before it can say no.
    const h = Array.from({ length: 10 }, (_, i) => op(i, "write", { in: i }, 0, 100));
    h.push(op(10, "read", { out: 99 }, 0, 100));
    const r = checkLinearizable(h, model, { maxSteps: 1_000 });
    expect(r.verdict).toBe("unknown");
    expect(checkLinearizable(h, model).verdict).toBe("not-linearizable");
    // 18 writes would take the search minutes; the time budget makes it answer.
    const huge = Array.from({ length: 18 }, (_, i) => op(i, "write", { in: i }, 0, 100));
    huge.push(op(18, "read", { out: 99 }, 0, 100));
    const t = checkLinearizable(huge, model, { timeoutMs: 200, maxSteps: 1e9 });
    expect(t.verdict).toBe("unknown");
    expect(t.elapsedMs).toBeLessThan(10_000);
  });
});

describe("counterModel", () => {
  it("accepts reads between the possible totals and rejects others", () => {
    const m = counterModel();
    const ok = [
      op(0, "add", { in: 2 }, 0, 10),
      op(1, "add", { in: 3 }, 0, 10),
      op(2, "read", { out: 3 }, 5, 6),
    ];
    expect(checkLinearizable(ok, m).verdict).toBe("linearizable");
    const bad = [op(0, "add", { in: 2 }, 0, 10), op(1, "read", { out: 0 }, 11, 12)];
    expect(checkLinearizable(bad, m).verdict).toBe("not-linearizable");
    const maybe = [
      op(0, "add", { in: 2 }, 0, 0, "info"),
      op(1, "read", { out: 2 }, 11, 12),
      op(2, "read", { out: 2 }, 13, 14),
    ];
    expect(checkLinearizable(maybe, m).verdict).toBe("linearizable");
    expect(() => checkLinearizable([op(0, "add", { in: "x" }, 0, 1)], m)).toThrow(/finite number/);
  });
});
