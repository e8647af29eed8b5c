// Decides whether a history is linearizable against a sequential model: Wing & Gong's search
// over the operations that could come next, with Lowe's memoisation of (linearized set, model
// state) so that no configuration is explored twice. Each key is checked on its own (a history
// is linearizable iff each key's sub-history is: linearizability is compositional).
import { InvalidOptionError } from "@keyhold/core";
import { InvalidHistoryError } from "./errors.js";
import type { Operation } from "./history.js";

/** A sequential specification the history is checked against. */
export interface Model<S> {
  readonly name: string;
  init(): S;
  /**
   * Whether the checker needs to place `op` at all. A `fail` operation normally did not happen
   * (return false); an `info` read has no effect and tells nothing (return false).
   */
  relevant(op: Operation): boolean;
  /**
   * The state after `op` takes effect in `state`, or `undefined` if `op` could not have
   * returned what it did from `state`. `info` operations carry no output: step them as if
   * they succeeded.
   */
  step(state: S, op: Operation): S | undefined;
  /** Equal states must give equal strings (the memoisation key). */
  stateKey(state: S): string;
}

export type Verdict = "linearizable" | "not-linearizable" | "unknown";

export interface CheckOptions {
  /**
   * Search steps allowed per key before the key's verdict is "unknown". @default 5_000_000
   */
  readonly maxSteps?: number;
  /** Wall time allowed for the whole check; keys not decided by then are "unknown". @default 30_000 */
  readonly timeoutMs?: number;
}

export const DEFAULT_CHECK_MAX_STEPS = 5_000_000;
export const DEFAULT_CHECK_TIMEOUT_MS = 30_000;

export interface KeyResult {
  readonly key: string;
  readonly verdict: Verdict;
  /** Operations the search had to place (`relevant` ones). */
  readonly operations: number;
  readonly steps: number;
  readonly elapsedMs: number;
  /**
   * For "not-linearizable": the longest order of operations (ids) the search found consistent
   * with the model, and the definite operation it could never get past.
   */
  readonly longestPrefix?: readonly number[];
  readonly stuckAt?: Operation;
}

export interface CheckResult {
  /** "not-linearizable" if any key is; else "unknown" if any key is; else "linearizable". */
  readonly verdict: Verdict;
  readonly keys: readonly KeyResult[];
  readonly elapsedMs: number;
}

/** Checks every key of `history` against `model`. */
export function checkLinearizable<S>(
  history: readonly Operation[],
  model: Model<S>,
  options: CheckOptions = {},
): CheckResult {
  const maxSteps = options.maxSteps ?? DEFAULT_CHECK_MAX_STEPS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  if (!Number.isInteger(maxSteps) || maxSteps < 1)
    throw new InvalidOptionError("maxSteps", "an integer >= 1", maxSteps);
  if (!(timeoutMs > 0)) throw new InvalidOptionError("timeoutMs", "a number > 0", timeoutMs);
  const started = performance.now();
  const deadline = started + timeoutMs;
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    if (!model.relevant(op)) continue;
    // NaN or a completion before the invocation would silently corrupt the time order.
    if (!Number.isFinite(op.invokedAt) || !(op.completedAt >= op.invokedAt))
      throw new InvalidHistoryError(
        `operation interval must have a finite invokedAt <= completedAt, got ${op.invokedAt}..${op.completedAt}`,
        { opId: op.id },
      );
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  const keys: KeyResult[] = [];
  for (const [key, ops] of byKey) keys.push(checkKey(key, ops, model, maxSteps, deadline));
  const verdict: Verdict = keys.some((k) => k.verdict === "not-linearizable")
    ? "not-linearizable"
    : keys.some((k) => k.verdict === "unknown")
      ? "unknown"
      : "linearizable";
  return { verdict, keys, elapsedMs: performance.now() - started };
}

/** A node of the doubly linked list of call and return entries, in time order. */
interface Entry {
  readonly op: number;
  readonly isCall: boolean;
  readonly time: number;
  /** For a call, its return entry. */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

function checkKey<S>(
  key: string,
  ops: readonly Operation[],
  model: Model<S>,
  maxSteps: number,
  deadline: number,
): KeyResult {
  const started = performance.now();
  const n = ops.length;
  // Calls sort before returns at equal times: touching intervals count as concurrent, the
  // lenient reading when a clock cannot separate them.
  const raw: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const op = ops[i] as Operation;
    const call: Entry = {
      op: i,
      isCall: true,
      time: op.invokedAt,
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    const ret: Entry = {
      op: i,
      isCall: false,
      time: op.completedAt,
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    call.match = ret;
    raw.push(call, ret);
  }
  raw.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.op - b.op);
  const head: Entry = { op: -1, isCall: false, time: -1, match: undefined, prev: undefined, next: undefined };
  let prev = head;
  for (const e of raw) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }

  // An info operation never has to be placed: it may take effect after everything else.
  let definiteLeft = 0;
  for (const op of ops) if (op.status !== "info") definiteLeft++;

  const words = Math.ceil(n / 32) || 1;
  const bits = new Uint32Array(words);
  // The bitset as a string of 16-bit code units: the cheapest exact memo key we measured.
  const halves = new Uint16Array(bits.buffer);
  const seen = new Set<string>();
  const stack: { entry: Entry; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;
  let longest: number[] = [];
  let stuck: Operation | undefined;
  let stuckDepth = -1;

  const result = (verdict: Verdict): KeyResult => ({
    key,
    verdict,
    operations: n,
    steps,
    elapsedMs: performance.now() - started,
    ...(verdict === "not-linearizable"
      ? { longestPrefix: longest.map((i) => (ops[i] as Operation).id), ...(stuck ? { stuckAt: stuck } : {}) }
      : {}),
  });

  while (definiteLeft > 0) {
    if (++steps > maxSteps) return result("unknown");
    if ((steps & 1023) === 0 && performance.now() > deadline) return result("unknown");
    if (entry === undefined) throw new Error("linearizability search ran off the end of the history");
    if (entry.isCall) {
      const op = ops[entry.op] as Operation;
      const next = model.step(state, op);
      if (next !== undefined) {
        const w = entry.op >>> 5;
        const mask = 1 << (entry.op & 31);
        bits[w] = (bits[w] as number) | mask;
        const memo = `${String.fromCharCode.apply(null, halves as unknown as number[])}|${model.stateKey(next)}`;
        if (!seen.has(memo)) {
          seen.add(memo);
          stack.push({ entry, state });
          state = next;
          if (op.status !== "info") definiteLeft--;
          lift(entry);
          if (stack.length > longest.length) longest = stack.map((s) => s.entry.op);
          entry = head.next;
          continue;
        }
        bits[w] = (bits[w] as number) & ~mask;
      }
      entry = entry.next;
    } else {
      // The earliest pending return: its operation must have been placed by now. Undo the last choice.
      // Remember the operation that blocked the deepest partial order found.
      if (stack.length > stuckDepth) {
        stuckDepth = stack.length;
        stuck = ops[entry.op];
      }
      if (stack.length === 0) return result("not-linearizable");
      const top = stack.pop() as { entry: Entry; state: S };
      state = top.state;
      const op = ops[top.entry.op] as Operation;
      if (op.status !== "info") definiteLeft++;
      const w = top.entry.op >>> 5;
      bits[w] = (bits[w] as number) & ~(1 << (top.entry.op & 31));
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return result("linearizable");
}

function lift(call: Entry): void {
  const ret = call.match as Entry;
  (call.prev as Entry).next = call.next;
  if (call.next) call.next.prev = call.prev;
  (ret.prev as Entry).next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match as Entry;
  (ret.prev as Entry).next = ret;
  if (ret.next) ret.next.prev = ret;
  (call.prev as Entry).next = call;
  if (call.next) call.next.prev = call;
}
