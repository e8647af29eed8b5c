// Sequential models for the linearizability checker: a register (read, write, compare-and-set)
// and a counter (add, read), the two shapes of state our entity tests exercise.
import { InvalidOptionError } from "@keyhold/core";
import { InvalidHistoryError } from "./errors.js";
import type { Operation } from "./history.js";
import type { Model } from "./linearizability.js";

export interface RegisterModelOptions {
  /** The value before the first write. @default null */
  readonly initial?: unknown;
  /**
   * What a `fail` cas means. `"mismatch"`: the register certainly did not hold `expected` (a
   * definite observation, Jepsen's reading for etcd). `"no-effect"`: only that it did not swap,
   * so it is left out. @default "mismatch"
   */
  readonly casFail?: "mismatch" | "no-effect";
}

/**
 * A register. Operations: `read` (output: the value), `write` (input: the value), `cas`
 * (input: `[expected, new]`, ok when it swapped). Values compare by their JSON text, so
 * `null` and `undefined` both stand for "never written".
 */
export function registerModel(options: RegisterModelOptions = {}): Model<unknown> {
  const initial = options.initial ?? null;
  const casFail = options.casFail ?? "mismatch";
  if (casFail !== "mismatch" && casFail !== "no-effect")
    throw new InvalidOptionError("casFail", '"mismatch" or "no-effect"', casFail);
  return {
    name: "register",
    init: () => initial,
    relevant(op: Operation): boolean {
      if (op.status === "fail") return op.f === "cas" && casFail === "mismatch";
      if (op.status === "info") return op.f !== "read";
      return true;
    },
    step(state: unknown, op: Operation): unknown {
      switch (op.f) {
        case "read":
          return same(state, op.output) ? state : undefined;
        case "write":
          return normal(op.input);
        case "cas": {
          const [expected, next] = pair(op);
          if (op.status === "fail") return same(state, expected) ? undefined : state;
          return same(state, expected) ? normal(next) : undefined;
        }
        default:
          throw new InvalidHistoryError(`register model: unknown operation ${op.f}`, { opId: op.id });
      }
    },
    stateKey: keyOf,
  };
}

/**
 * A counter starting at `initial`. Operations: `add` (input: a finite number, output ignored),
 * `read` (output: the value).
 */
export function counterModel(options: { readonly initial?: number } = {}): Model<number> {
  const initial = options.initial ?? 0;
  if (!Number.isFinite(initial)) throw new InvalidOptionError("initial", "a finite number", initial);
  return {
    name: "counter",
    init: () => initial,
    relevant: (op) => (op.status === "ok" ? true : op.status === "info" && op.f === "add"),
    step(state: number, op: Operation): number | undefined {
      if (op.f === "add") {
        if (typeof op.input !== "number" || !Number.isFinite(op.input))
          throw new InvalidHistoryError(`counter model: add needs a finite number, got ${String(op.input)}`, {
            opId: op.id,
          });
        return state + op.input;
      }
      if (op.f === "read") return op.output === state ? state : undefined;
      throw new InvalidHistoryError(`counter model: unknown operation ${op.f}`, { opId: op.id });
    },
    stateKey: (state) => String(state),
  };
}

function normal(v: unknown): unknown {
  return v === undefined ? null : v;
}

function same(a: unknown, b: unknown): boolean {
  const x = normal(a);
  const y = normal(b);
  if (x === y) return true;
  // Only structured values need their JSON text compared.
  if (typeof x !== "object" || typeof y !== "object" || x === null || y === null) return false;
  return JSON.stringify(x) === JSON.stringify(y);
}

function keyOf(v: unknown): string {
  if (v === undefined || v === null) return "null";
  return typeof v === "number" ? String(v) : (JSON.stringify(v) ?? "null");
}

function pair(op: Operation): [unknown, unknown] {
  if (!Array.isArray(op.input) || op.input.length !== 2)
    throw new InvalidHistoryError(
      `register model: cas needs [expected, new], got ${JSON.stringify(op.input)}`,
      {
        opId: op.id,
      },
    );
  return [op.input[0], op.input[1]];
}
