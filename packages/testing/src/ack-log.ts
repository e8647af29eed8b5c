// Node-side acknowledgement logs and their analysis: which keys had two nodes acknowledging at
// overlapping times (two owners), and which acknowledged writes the final state no longer holds.
import { appendFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { sharedMonotonicNow } from "./history.js";

/**
 * One act of a node as the owner of a key, written by the node itself.
 *
 * Time base: `t0` and `t1` are milliseconds from `sharedMonotonicNow()`
 * (`performance.timeOrigin + performance.now()`), which is monotonic within a process and
 * comparable between processes on one machine (both count from the same wall-clock origin;
 * what is left is the error of each process's `timeOrigin`, well under a millisecond on Linux).
 * Records from different machines need their own clock alignment before analysis.
 */
export interface AckRecord {
  /** Record format version. Always 1. */
  readonly v: 1;
  /** The node that acted: its node id (or any name unique to the process). */
  readonly node: string;
  /** What it acted on, e.g. `"counter/k17"` (entity type and key). */
  readonly key: string;
  /** The operation's id, unique within the test, as the client sent it; "" for `own`. */
  readonly op: string;
  /**
   * `write`: the node applied a change and acknowledged it. `read`: it answered a read. `own`:
   * an interval in which it considered itself the owner, without an operation (activation to
   * passivation, for example).
   */
  readonly kind: "write" | "read" | "own";
  /**
   * The interval in which the node acted as owner for this record: for a `write`, from when
   * the handler started to when the acknowledgement was sent. `t0 <= t1`.
   */
  readonly t0: number;
  readonly t1: number;
  /** The amount added or value written (a `write`), or the value answered (a `read`). */
  readonly value?: unknown;
  /** The OS process id, for matching records to processes. */
  readonly pid?: number;
}

/** The time base of `AckRecord.t0` / `t1`. */
export const ackClock = sharedMonotonicNow;

/** Environment variable naming a file that `emitAck` appends JSON lines to. */
export const ACK_LOG_ENV = "KEYHOLD_ACK_LOG";

/**
 * Emits one record from a node process: appended as a JSON line to `file` (default: the file
 * named by `KEYHOLD_ACK_LOG`) if there is one, else sent over the IPC channel as
 * `{ type: "ack", record }`, which `IpcProcess` collects into `acks`. Returns false if there was
 * nowhere to write it. Synchronous, so a record is out before the acknowledgement is sent.
 */
export function emitAck(
  record: Omit<AckRecord, "v" | "pid"> & { pid?: number },
  options: { file?: string } = {},
): boolean {
  const full: AckRecord = { v: 1, pid: process.pid, ...record };
  const file = options.file ?? process.env[ACK_LOG_ENV];
  if (file) {
    appendFileSync(file, `${JSON.stringify(full)}\n`);
    return true;
  }
  if (process.send && process.connected) {
    process.send({ type: "ack", record: full });
    return true;
  }
  return false;
}

/** The record if `value` is a well-formed AckRecord, else undefined. */
export function parseAckRecord(value: unknown): AckRecord | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Record<string, unknown>;
  if (r.v !== 1) return undefined;
  if (typeof r.node !== "string" || r.node === "" || typeof r.key !== "string" || typeof r.op !== "string")
    return undefined;
  if (r.kind !== "write" && r.kind !== "read" && r.kind !== "own") return undefined;
  if (typeof r.t0 !== "number" || typeof r.t1 !== "number" || !Number.isFinite(r.t0) || !(r.t1 >= r.t0))
    return undefined;
  if (r.pid !== undefined && !Number.isInteger(r.pid)) return undefined;
  return r as unknown as AckRecord;
}

/** Reads a JSON-lines ack log; lines that are not well-formed records are counted, not kept. */
export async function readAckLog(path: string): Promise<{ records: AckRecord[]; malformed: number }> {
  const records: AckRecord[] = [];
  let malformed = 0;
  for (const line of (await readFile(path, "utf8")).split("\n")) {
    if (line.trim() === "") continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      malformed++;
      continue;
    }
    const r = parseAckRecord(parsed);
    if (r) records.push(r);
    else malformed++;
  }
  return { records, malformed };
}

/** Two nodes acting as owner of one key at overlapping times. */
export interface AckOverlap {
  readonly key: string;
  /** The earlier-starting record's node first. */
  readonly nodes: readonly [string, string];
  readonly ops: readonly [string, string];
  readonly from: number;
  readonly to: number;
  /** `to - from`; 0 when the intervals only touch (which still counts). */
  readonly ms: number;
}

export interface AckAnalysis {
  readonly records: number;
  readonly keys: number;
  /** Keys on which two nodes' intervals overlap (closed intervals: touching counts). */
  readonly keysWithOverlap: readonly string[];
  /** The longest overlap per such key. */
  readonly overlaps: readonly AckOverlap[];
  /** The longest overlap of all, if any. */
  readonly longest: AckOverlap | undefined;
}

/**
 * Finds, per key, pairs of records of different nodes whose intervals overlap, keeping the
 * longest per key. Sweep by start time: for a record r and any earlier-starting record q of
 * another node, the overlap is `min(r.t1, q.t1) - r.t0`, so the latest-ending earlier record
 * of each node is the only one that matters. O(records × nodes).
 */
export function analyzeAcks(records: readonly AckRecord[]): AckAnalysis {
  const byKey = new Map<string, AckRecord[]>();
  for (const r of records) {
    const list = byKey.get(r.key);
    if (list) list.push(r);
    else byKey.set(r.key, [r]);
  }
  const overlaps: AckOverlap[] = [];
  for (const [key, list] of byKey) {
    list.sort((a, b) => a.t0 - b.t0 || a.t1 - b.t1);
    const latest = new Map<string, AckRecord>();
    let worst: AckOverlap | undefined;
    for (const r of list) {
      for (const [node, q] of latest) {
        if (node === r.node || q.t1 < r.t0) continue;
        const to = Math.min(r.t1, q.t1);
        const ms = to - r.t0;
        if (worst === undefined || ms > worst.ms)
          worst = { key, nodes: [q.node, r.node], ops: [q.op, r.op], from: r.t0, to, ms };
      }
      const mine = latest.get(r.node);
      if (mine === undefined || r.t1 > mine.t1) latest.set(r.node, r);
    }
    if (worst) overlaps.push(worst);
  }
  overlaps.sort((a, b) => b.ms - a.ms);
  return {
    records: records.length,
    keys: byKey.size,
    keysWithOverlap: overlaps.map((o) => o.key),
    overlaps,
    longest: overlaps[0],
  };
}

/**
 * Acknowledged writes missing from the final state, for state that keeps the ids of the
 * operations applied to it (a counter that remembers which adds it applied, an append-only
 * log). `applied(key)` gives those ids for a key, or undefined if the key is gone entirely.
 */
export function lostWrites(
  records: readonly AckRecord[],
  applied: (key: string) => Iterable<string> | undefined,
): { lost: AckRecord[]; acked: number } {
  const sets = new Map<string, Set<string>>();
  const lost: AckRecord[] = [];
  const seen = new Set<string>();
  for (const r of records) {
    if (r.kind !== "write" || seen.has(`${r.key}\u0000${r.op}`)) continue;
    seen.add(`${r.key}\u0000${r.op}`);
    let set = sets.get(r.key);
    if (set === undefined) {
      set = new Set(applied(r.key) ?? []);
      sets.set(r.key, set);
    }
    if (!set.has(r.op)) lost.push(r);
  }
  return { lost, acked: seen.size };
}

/**
 * For a counter that keeps only its value: acknowledged adds (the records' `value`) beyond what
 * the final value holds, per key. A lower bound on loss, since unacknowledged adds may have
 * been applied too; 0 means nothing provably lost.
 */
export function counterShortfall(
  records: readonly AckRecord[],
  finalValue: (key: string) => number,
): Map<string, number> {
  const sums = new Map<string, number>();
  const seen = new Set<string>();
  for (const r of records) {
    if (r.kind !== "write" || typeof r.value !== "number" || seen.has(`${r.key}\u0000${r.op}`)) continue;
    seen.add(`${r.key}\u0000${r.op}`);
    sums.set(r.key, (sums.get(r.key) ?? 0) + r.value);
  }
  const out = new Map<string, number>();
  for (const [key, sum] of sums) {
    const short = sum - finalValue(key);
    if (short > 0) out.set(key, short);
  }
  return out;
}

/**
 * For a register whose state names the operation that wrote it last: acknowledged writes that
 * certainly came after that one (started after it was acknowledged) yet are not what survived.
 * `writer(key)` gives the surviving writer's op id, undefined if the register holds its initial
 * value (then every acknowledged write on it is lost). Run the linearizability checker on the
 * client history too: it catches what this cannot (a stale value read back, for one).
 */
export function registerLostWrites(
  records: readonly AckRecord[],
  writer: (key: string) => string | undefined,
): AckRecord[] {
  const byKey = new Map<string, AckRecord[]>();
  for (const r of records) {
    if (r.kind !== "write") continue;
    const list = byKey.get(r.key);
    if (list) list.push(r);
    else byKey.set(r.key, [r]);
  }
  const lost: AckRecord[] = [];
  for (const [key, list] of byKey) {
    const w = writer(key);
    if (w === undefined) {
      lost.push(...list); // back to the initial value: every acknowledged write is gone
      continue;
    }
    const survivor = list.find((r) => r.op === w);
    // An unacknowledged writer may be linearized after everything: nothing provable here.
    if (survivor === undefined) continue;
    for (const r of list) if (r.op !== w && r.t0 > survivor.t1) lost.push(r);
  }
  return lost;
}
