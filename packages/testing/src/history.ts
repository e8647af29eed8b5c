// Records what clients asked and what they were told, operation by operation, so a checker can
// later decide whether some order of those operations explains every answer.
import { performance } from "node:perf_hooks";
import { InvalidOptionError } from "@keyhold/core";

/**
 * How an operation ended. `ok`: it took effect and returned `output`. `fail`: it certainly did
 * not take effect. `info`: unknown (a timeout, a lost connection); it may take effect at any
 * moment after its invocation, up to the end of the history, and it never completes.
 */
export type OpStatus = "ok" | "fail" | "info";

/** One operation of a history: one call by one process on one key, with its interval. */
export interface Operation {
  /** Unique in its history; stable across `operations()` calls. */
  readonly id: number;
  /** Who called it. A process runs one operation at a time. */
  readonly process: string;
  /** The object it acted on; the checker checks each key on its own. */
  readonly key: string;
  /** The function, e.g. "read", "write", "cas", "add". */
  readonly f: string;
  /** The argument: the value written, `[expected, new]` for a cas, the amount added. */
  readonly input: unknown;
  /** What an `ok` completion returned (the value read); undefined otherwise. */
  readonly output: unknown;
  readonly status: OpStatus;
  /** Monotonic time of the invocation. */
  readonly invokedAt: number;
  /** Monotonic time of the completion; `Infinity` for `info` and for still-open operations. */
  readonly completedAt: number;
}

/** One line of the recorded history, in the order it happened. */
export interface HistoryEvent {
  readonly type: "invoke" | OpStatus;
  readonly opId: number;
  readonly process: string;
  readonly key: string;
  readonly f: string;
  /** The input on `invoke`, the output on `ok`, the error text (if any) on `fail` / `info`. */
  readonly value: unknown;
  readonly at: number;
}

/** What `HistoryRecorder.invoke` returns: complete it exactly once. */
export interface PendingOp {
  readonly id: number;
  ok(output?: unknown): void;
  fail(reason?: unknown): void;
  info(reason?: unknown): void;
}

export interface HistoryRecorderOptions {
  /**
   * Monotonic clock in ms. Use one time base for every process whose operations are merged
   * into one history: the default `performance.timeOrigin + performance.now()` is comparable
   * across processes on one machine.
   * @default () => performance.timeOrigin + performance.now()
   */
  readonly clock?: () => number;
}

/** Monotonic milliseconds on a base shared by the processes of one machine. */
export function sharedMonotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

interface OpenOp {
  process: string;
  key: string;
  f: string;
  input: unknown;
  invokedAt: number;
  status?: OpStatus;
  output?: unknown;
  completedAt?: number;
}

/**
 * Collects invocations and completions. Typical use:
 * `await rec.run("client-1", "k1", "write", 3, () => ref.ask("write", 3), classify)`.
 */
export class HistoryRecorder {
  readonly #clock: () => number;
  readonly #events: HistoryEvent[] = [];
  readonly #ops: OpenOp[] = [];

  constructor(options: HistoryRecorderOptions = {}) {
    const clock = options.clock ?? sharedMonotonicNow;
    if (typeof clock !== "function") throw new InvalidOptionError("clock", "a function", clock);
    this.#clock = clock;
  }

  /** Records an invocation now; complete the returned handle with ok / fail / info. */
  invoke(process: string, key: string, f: string, input?: unknown): PendingOp {
    const id = this.#ops.length;
    const invokedAt = this.#clock();
    const op: OpenOp = { process, key, f, input, invokedAt };
    this.#ops.push(op);
    this.#events.push({ type: "invoke", opId: id, process, key, f, value: input, at: invokedAt });
    const complete = (status: OpStatus, value: unknown) => {
      if (op.status !== undefined) throw new Error(`operation ${id} (${f} ${key}) completed twice`);
      const at = this.#clock();
      op.status = status;
      if (status === "ok") op.output = value;
      op.completedAt = status === "info" ? Number.POSITIVE_INFINITY : at;
      this.#events.push({ type: status, opId: id, process, key, f, value, at });
    };
    return {
      id,
      ok: (output) => complete("ok", output),
      fail: (reason) => complete("fail", describe(reason)),
      info: (reason) => complete("info", describe(reason)),
    };
  }

  /**
   * Runs `call` as one operation. Its result is the `ok` output (through `output` if given); a
   * thrown error is a `fail` if `classify` says so, otherwise `info` (unknown), because an error
   * rarely proves the call had no effect. Rethrows nothing: resolves with the operation's status.
   */
  async run<T>(
    process: string,
    key: string,
    f: string,
    input: unknown,
    call: () => Promise<T>,
    options: { classify?: (err: unknown) => "fail" | "info"; output?: (result: T) => unknown } = {},
  ): Promise<{ status: OpStatus; result?: T; error?: unknown }> {
    const op = this.invoke(process, key, f, input);
    try {
      const result = await call();
      op.ok(options.output ? options.output(result) : result);
      return { status: "ok", result };
    } catch (error) {
      const status = options.classify?.(error) ?? "info";
      if (status === "fail") op.fail(error);
      else op.info(error);
      return { status, error };
    }
  }

  /** Every event so far, in the order recorded. */
  events(): readonly HistoryEvent[] {
    return [...this.#events];
  }

  /**
   * The operations so far. One still open (invoked, not completed) counts as `info`: it may
   * yet take effect.
   */
  operations(): Operation[] {
    return this.#ops.map((o, id) => ({
      id,
      process: o.process,
      key: o.key,
      f: o.f,
      input: o.input,
      output: o.output,
      status: o.status ?? "info",
      invokedAt: o.invokedAt,
      completedAt: o.completedAt ?? Number.POSITIVE_INFINITY,
    }));
  }
}

/**
 * Merges the operations of several recorders (several client processes sharing a time base)
 * into one history with fresh ids.
 */
export function mergeHistories(...histories: readonly (readonly Operation[])[]): Operation[] {
  return histories
    .flat()
    .sort((a, b) => a.invokedAt - b.invokedAt)
    .map((o, id) => ({ ...o, id }));
}

function describe(reason: unknown): unknown {
  if (reason === undefined) return undefined;
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  return reason;
}
