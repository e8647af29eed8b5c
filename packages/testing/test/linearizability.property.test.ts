// Properties of the linearizability checker: histories cut from a sequential run (each
// operation's interval around its point in that run) are linearizable, whatever the overlap
// and whatever becomes unknown; a read of a value nobody wrote never is.
import {
  checkLinearizable,
  counterModel,
  type Model,
  type Operation,
  type OpStatus,
  registerModel,
} from "@keyhold/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

interface Step {
  key: string;
  f: "read" | "write" | "cas" | "add";
  arg: number;
  casExpected: number;
  /** How far the interval reaches before and after the operation's point. */
  before: number;
  after: number;
  unknown: boolean;
}

const registerStep = fc.record({
  key: fc.constantFrom("a", "b", "c"),
  f: fc.constantFrom<"read" | "write" | "cas">("read", "write", "cas"),
  arg: fc.integer({ min: 0, max: 4 }),
  casExpected: fc.integer({ min: 0, max: 4 }),
  before: fc.integer({ min: 0, max: 40 }),
  after: fc.integer({ min: 0, max: 40 }),
  unknown: fc.boolean(),
});

/**
 * Runs `steps` one after another on real registers and turns each into an operation whose
 * interval contains its moment in that run (moments 10 ms apart), so intervals overlap freely.
 * Unknown writes and cas become `info`: they did take effect, at their moment.
 */
function registerHistory(steps: readonly Step[]): Operation[] {
  const regs = new Map<string, number | null>();
  return steps.map((s, i): Operation => {
    const current = regs.get(s.key) ?? null;
    let output: unknown;
    let input: unknown;
    let status: OpStatus = "ok";
    if (s.f === "read") output = current;
    else if (s.f === "write") {
      input = s.arg;
      regs.set(s.key, s.arg);
    } else {
      // Half of the cas expect the current value, so some succeed.
      const expected = i % 2 === 0 && current !== null ? current : s.casExpected;
      input = [expected, s.arg];
      if (current === expected) regs.set(s.key, s.arg);
      else status = "fail";
    }
    if (s.unknown && s.f !== "read" && status === "ok") status = "info";
    const at = i * 10;
    return {
      id: i,
      process: `p${i}`,
      key: s.key,
      f: s.f,
      input,
      output,
      status,
      invokedAt: at - s.before,
      completedAt: status === "info" ? Number.POSITIVE_INFINITY : at + s.after,
    };
  });
}

function verdict<S>(ops: readonly Operation[], model: Model<S>) {
  return checkLinearizable(ops, model, { timeoutMs: 10_000 }).verdict;
}

describe("linearizability checker properties", () => {
  it("a history cut from a sequential run of registers is linearizable", () => {
    fc.assert(
      fc.property(fc.array(registerStep, { maxLength: 40 }), (steps) => {
        expect(verdict(registerHistory(steps), registerModel())).toBe("linearizable");
      }),
      { numRuns: 300 },
    );
  });

  it("the verdict does not depend on the order of the operation list", () => {
    fc.assert(
      fc.property(
        fc.array(registerStep, { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 0, max: 4 }),
        fc.nat(),
        (steps, bogus, seed) => {
          const ops = registerHistory(steps);
          // Make it wrong half the time: one read claims a different value.
          const reads = ops.filter((o) => o.f === "read");
          const target = reads[seed % Math.max(1, reads.length)];
          const tampered = ops.map((o) => (o === target ? { ...o, output: bogus } : o));
          const shuffled = fc.sample(fc.shuffledSubarray(tampered, { minLength: tampered.length }), {
            seed,
            numRuns: 1,
          })[0] as Operation[];
          expect(verdict(shuffled, registerModel())).toBe(verdict(tampered, registerModel()));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a read of a value never written is not linearizable", () => {
    fc.assert(
      fc.property(
        fc.array(registerStep, { maxLength: 30 }),
        fc.constantFrom("a", "b", "c"),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 0, max: 100 }),
        (steps, key, at, width) => {
          const ops = registerHistory(steps);
          ops.push({
            id: ops.length,
            process: "reader",
            key,
            f: "read",
            input: undefined,
            output: 99, // generated values are 0..4
            status: "ok",
            invokedAt: at,
            completedAt: at + width,
          });
          const r = checkLinearizable(ops, registerModel());
          expect(r.verdict).toBe("not-linearizable");
          // Only the key with the bad read fails (each key is checked on its own).
          expect(r.keys.filter((k) => k.verdict === "not-linearizable").map((k) => k.key)).toEqual([key]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a counter history cut from a sequential run is linearizable, and a read above every possible total is not", () => {
    const step = fc.record({
      add: fc.boolean(),
      by: fc.integer({ min: 1, max: 5 }),
      before: fc.integer({ min: 0, max: 30 }),
      after: fc.integer({ min: 0, max: 30 }),
      unknown: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        let n = 0;
        let total = 0;
        const ops: Operation[] = steps.map((s, i) => {
          const at = i * 10;
          if (s.add) {
            n += s.by;
            total += s.by;
          }
          const status: OpStatus = s.add && s.unknown ? "info" : "ok";
          return {
            id: i,
            process: `p${i}`,
            key: "c",
            f: s.add ? "add" : "read",
            input: s.add ? s.by : undefined,
            output: s.add ? undefined : n,
            status,
            invokedAt: at - s.before,
            completedAt: status === "info" ? Number.POSITIVE_INFINITY : at + s.after,
          };
        });
        expect(verdict(ops, counterModel())).toBe("linearizable");
        ops.push({
          id: ops.length,
          process: "reader",
          key: "c",
          f: "read",
          input: undefined,
          output: total + 1,
          status: "ok",
          invokedAt: 0,
          completedAt: steps.length * 10 + 100,
        });
        expect(verdict(ops, counterModel())).toBe("not-linearizable");
      }),
      { numRuns: 300 },
    );
  });
});
