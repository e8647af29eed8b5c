// Reads the register histories Jepsen prints (`INFO jepsen.util - <process> :invoke :read nil`)
// into operations, so the checker can be tried on histories recorded elsewhere.
import { InvalidHistoryError } from "./errors.js";
import type { Operation, OpStatus } from "./history.js";

const LINE = /jepsen\.util\s+-\s+(\S+)\s+:(invoke|ok|fail|info)\s+:(\w[\w-]*)\s*(.*)$/;

/**
 * Parses one history on one key (`key`, default "r"). Times are line numbers: lines are in real
 * time order. A `:fail :read :timed-out` is dropped (a read that may not have happened tells
 * nothing); an invocation never completed counts as `info`.
 */
export function parseJepsenLog(text: string, key = "r"): Operation[] {
  const ops: {
    process: string;
    f: string;
    input: unknown;
    output: unknown;
    status: OpStatus | undefined;
    invokedAt: number;
    completedAt: number;
    drop: boolean;
  }[] = [];
  const open = new Map<string, number>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === "") continue;
    const m = LINE.exec(raw);
    if (!m)
      throw new InvalidHistoryError(`not a jepsen.util history line: ${raw.slice(0, 80)}`, { line: i + 1 });
    const [, process = "", type = "", f = "", valueText = ""] = m;
    const value = parseValue(valueText.trim(), i + 1);
    if (type === "invoke") {
      if (open.has(process))
        throw new InvalidHistoryError(`process ${process} invoked twice without completing`, { line: i + 1 });
      open.set(process, ops.length);
      ops.push({
        process,
        f,
        input: f === "read" ? undefined : value,
        output: undefined,
        status: undefined,
        invokedAt: i,
        completedAt: Number.POSITIVE_INFINITY,
        drop: false,
      });
      continue;
    }
    const at = open.get(process);
    if (at === undefined)
      throw new InvalidHistoryError(`process ${process} completed a call it never invoked`, { line: i + 1 });
    open.delete(process);
    const op = ops[at] as (typeof ops)[number];
    if (op.f !== f)
      throw new InvalidHistoryError(`process ${process} invoked ${op.f} but completed ${f}`, { line: i + 1 });
    op.status = type as OpStatus;
    if (type === "ok") {
      op.completedAt = i;
      if (f === "read") op.output = value;
    } else if (type === "fail") {
      op.completedAt = i;
      if (f === "read") op.drop = true;
    }
  }
  return ops
    .filter((o) => !o.drop)
    .map((o, id) => ({
      id,
      process: o.process,
      key,
      f: o.f,
      input: o.input,
      output: o.output,
      status: o.status ?? "info",
      invokedAt: o.invokedAt,
      completedAt: o.status === "info" || o.status === undefined ? Number.POSITIVE_INFINITY : o.completedAt,
    }));
}

/** `nil`, an integer, `[a b]`, or a keyword such as `:timed-out` (kept as a string). */
function parseValue(text: string, line: number): unknown {
  if (text === "" || text === "nil") return null;
  if (/^-?\d+$/.test(text)) return Number(text);
  if (text.startsWith(":")) return text;
  const pair = /^\[(\S+)\s+(\S+)\]$/.exec(text);
  if (pair) return [parseValue(pair[1] as string, line), parseValue(pair[2] as string, line)];
  throw new InvalidHistoryError(`cannot read value ${text}`, { line });
}
