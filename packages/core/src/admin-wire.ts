// The admin wire: every member of a cluster answers one broadcast subject with a report of
// itself (scatter-gather: one request, a reply per member), and its own subject for the one
// mutation, drain. Observers and clients never answer. Every message is validated here.
import { Packr } from "msgpackr";
import type { MembershipStats } from "./membership.js";
import { type ClusterConfig, MAX_RING_SIZE } from "./options.js";
import { isId, isNat, isObj } from "./validate.js";
import { unpackMap } from "./wire.js";

export const ADMIN_WIRE_VERSION = 1;
/** Recent hand-offs a report carries, newest last. */
export const ADMIN_RECENT_HANDOFFS = 20;
/** The stable code a node replies with when asked to drain without `admin.allowDrain`. */
export const DRAIN_NOT_ALLOWED = "KH_DRAIN_NOT_ALLOWED";

/** Subjects of one cluster's admin protocol. */
export function adminSubjects(cluster: string) {
  const all = `keyhold.${cluster}.admin`;
  return { all, node: (id: string) => `${all}.${id}` } as const;
}

export type AdminRequest =
  | { readonly v: 1; readonly k: "status" }
  | { readonly v: 1; readonly k: "drain"; readonly node: string };

/** What a node hosting entities adds to its report (filled in by @keyhold/actors). */
export interface EntitiesReport {
  /** Messages handled per second over the last few seconds. */
  readonly asksPerSec: number;
  /** Handling latency (queued to answered) over the same window; null with nothing handled. */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Messages handled since start. */
  readonly handled: number;
  /** Messages waiting in entity mailboxes now. */
  readonly mailbox: number;
  /** [entity type, active instances, known entities] per type. */
  readonly types: ReadonlyArray<readonly [string, number, number]>;
  /** [partition, "pending" | "releasing"]: hand-offs under way on this node. */
  readonly handoffs: ReadonlyArray<readonly [number, "pending" | "releasing"]>;
  /** The last completed hand-offs on this node, oldest first. */
  readonly recent: ReadonlyArray<{
    readonly p: number;
    readonly from: readonly string[];
    readonly ms: number;
    readonly records: number;
    readonly at: number;
  }>;
  /** Sharding.stats(): groups of counters (router, host, handoff, replication, requests). */
  readonly stats: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** One node's answer to a status request. */
export interface NodeReport {
  readonly id: string;
  /** The node's wall clock when it answered, ms since the epoch. */
  readonly at: number;
  readonly startedAt: number;
  readonly fenced: boolean;
  readonly config: ClusterConfig;
  /** Live members in this node's view, sorted. */
  readonly members: readonly string[];
  /** [member, ms since the emission of its newest heartbeat this node saw]. */
  readonly leases: ReadonlyArray<readonly [string, number]>;
  readonly departed: readonly string[];
  /** Partitions this node owns now, ascending. */
  readonly owned: readonly number[];
  readonly drainAllowed: boolean;
  readonly membership: Readonly<MembershipStats>;
  readonly entities?: EntitiesReport;
  /**
   * [member, admission front] of the members this node places with a cap (joining or leaving
   * step by step, itself included: join-steps.ts), from their heartbeats; absent when none is.
   */
  readonly adm?: ReadonlyArray<readonly [string, number]>;
}

export type AdminReply =
  | { readonly v: 1; readonly k: "report"; readonly r: NodeReport }
  | { readonly v: 1; readonly k: "draining"; readonly node: string }
  | { readonly v: 1; readonly k: "refused"; readonly code: string; readonly message: string };

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

export function encodeAdmin(msg: AdminRequest | AdminReply): Uint8Array {
  return packr.pack(msg);
}

/** Why an admin message was dropped. */
export interface AdminMalformed {
  readonly error: string;
}

export function isAdminMalformed<T extends object>(x: T | AdminMalformed): x is AdminMalformed {
  return "error" in x;
}

const MAX_REQUEST_BYTES = 4096;
const MAX_REPLY_BYTES = 4 * 1_048_576;
const MAX_LIST = 10_000;

const isCount = (x: unknown): x is number => isNat(x, Number.MAX_SAFE_INTEGER);
const isTime = (x: unknown): x is number => isCount(x) && x > 0 && x < 253402300800000;
const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0;
const isPartition = (x: unknown): x is number => isCount(x) && x < MAX_RING_SIZE;
const isName = (x: unknown): x is string => typeof x === "string" && x.length > 0 && x.length <= 128;
const listOf = <T>(x: unknown, ok: (e: unknown) => e is T, max = MAX_LIST): x is T[] =>
  Array.isArray(x) && x.length <= max && x.every(ok);

function unpack(data: Uint8Array, max: number): Record<string, unknown> | AdminMalformed {
  const u = unpackMap(data, max, ADMIN_WIRE_VERSION, "admin wire");
  return "map" in u ? u.map : u;
}

/** Decodes and validates an admin request; never throws. */
export function decodeAdminRequest(data: Uint8Array): AdminRequest | AdminMalformed {
  const m = unpack(data, MAX_REQUEST_BYTES);
  if (isAdminMalformed(m)) return m;
  if (m.k === "status") return { v: 1, k: "status" };
  if (m.k === "drain") return isId(m.node) ? { v: 1, k: "drain", node: m.node } : { error: "bad node id" };
  return { error: "unknown kind" };
}

/** Decodes and validates an admin reply; never throws. Copies only known fields. */
export function decodeAdminReply(data: Uint8Array): AdminReply | AdminMalformed {
  const m = unpack(data, MAX_REPLY_BYTES);
  if (isAdminMalformed(m)) return m;
  switch (m.k) {
    case "draining":
      return isId(m.node) ? { v: 1, k: "draining", node: m.node } : { error: "bad node id" };
    case "refused":
      if (!isName(m.code) || typeof m.message !== "string" || m.message.length > 2000)
        return { error: "bad refusal" };
      return { v: 1, k: "refused", code: m.code, message: m.message };
    case "report": {
      const r = parseReport(m.r);
      return typeof r === "string" ? { error: r } : { v: 1, k: "report", r };
    }
    default:
      return { error: "unknown kind" };
  }
}

function parseCounters<T>(x: unknown, maxKeys: number): T | undefined {
  if (!isObj(x)) return undefined;
  const keys = Object.keys(x);
  if (keys.length > maxKeys) return undefined;
  const out: Record<string, number> = {};
  for (const k of keys) {
    if (!isName(k) || !isNum(x[k])) return undefined;
    out[k] = x[k];
  }
  return out as T;
}

function parseReport(r: unknown): NodeReport | string {
  if (!isObj(r)) return "report not a map";
  if (!isId(r.id)) return "bad id";
  if (!isTime(r.at) || !isTime(r.startedAt)) return "bad time";
  if (typeof r.fenced !== "boolean" || typeof r.drainAllowed !== "boolean") return "bad flags";
  const c = r.config;
  if (
    !isObj(c) ||
    !isCount(c.ringSize) ||
    !isCount(c.heartbeatMs) ||
    !isCount(c.ttlMs) ||
    !isCount(c.skewMs) ||
    !isName(c.hash)
  )
    return "bad config";
  if (c.ringSize < 1 || c.ringSize > MAX_RING_SIZE) return "bad ring size";
  if (!listOf(r.members, isId) || !listOf(r.departed, isId)) return "bad members";
  if (!listOf(r.owned, isPartition, MAX_RING_SIZE)) return "bad owned partitions";
  const isLease = (e: unknown): e is [string, number] =>
    Array.isArray(e) && e.length === 2 && isId(e[0]) && isNum(e[1]);
  if (!listOf(r.leases, isLease)) return "bad leases";
  const membership = parseCounters<MembershipStats>(r.membership, 32);
  if (!membership) return "bad membership stats";
  const report: NodeReport = {
    id: r.id,
    at: r.at,
    startedAt: r.startedAt,
    fenced: r.fenced,
    drainAllowed: r.drainAllowed,
    config: {
      ringSize: c.ringSize,
      heartbeatMs: c.heartbeatMs,
      ttlMs: c.ttlMs,
      skewMs: c.skewMs,
      hash: c.hash,
    },
    members: r.members,
    departed: r.departed,
    owned: r.owned,
    leases: r.leases.map(([id, age]) => [id, age] as const),
    membership,
  };
  const isFront = (e: unknown): e is [string, number] =>
    Array.isArray(e) && e.length === 2 && isId(e[0]) && isCount(e[1]) && e[1] <= MAX_RING_SIZE;
  if (r.adm !== undefined && !listOf(r.adm, isFront)) return "bad admission fronts";
  const withAdm = r.adm === undefined ? report : { ...report, adm: r.adm.map(([id, f]) => [id, f] as const) };
  if (r.entities === undefined) return withAdm;
  const e = parseEntities(r.entities);
  return typeof e === "string" ? e : { ...withAdm, entities: e };
}

function parseEntities(e: unknown): EntitiesReport | string {
  if (!isObj(e)) return "entities not a map";
  if (!isNum(e.asksPerSec) || !isCount(e.handled) || !isCount(e.mailbox)) return "bad entity figures";
  if ((e.p50Ms !== null && !isNum(e.p50Ms)) || (e.p99Ms !== null && !isNum(e.p99Ms))) return "bad latency";
  const isType = (t: unknown): t is [string, number, number] =>
    Array.isArray(t) && t.length === 3 && isName(t[0]) && isCount(t[1]) && isCount(t[2]);
  if (!listOf(e.types, isType, 1000)) return "bad entity types";
  const isMove = (t: unknown): t is [number, "pending" | "releasing"] =>
    Array.isArray(t) && t.length === 2 && isPartition(t[0]) && (t[1] === "pending" || t[1] === "releasing");
  if (!listOf(e.handoffs, isMove, MAX_RING_SIZE)) return "bad hand-offs";
  const isRecent = (h: unknown): h is EntitiesReport["recent"][number] =>
    isObj(h) &&
    isPartition(h.p) &&
    listOf(h.from, isId, 1000) &&
    isNum(h.ms) &&
    isCount(h.records) &&
    isTime(h.at);
  if (!listOf(e.recent, isRecent, ADMIN_RECENT_HANDOFFS)) return "bad recent hand-offs";
  if (!isObj(e.stats) || Object.keys(e.stats).length > 16) return "bad stats";
  const stats: Record<string, Record<string, number>> = {};
  for (const [group, counters] of Object.entries(e.stats)) {
    const parsed = parseCounters<Record<string, number>>(counters, 64);
    if (!isName(group) || !parsed) return "bad stats";
    stats[group] = parsed;
  }
  return {
    asksPerSec: e.asksPerSec,
    p50Ms: e.p50Ms as number | null,
    p99Ms: e.p99Ms as number | null,
    handled: e.handled,
    mailbox: e.mailbox,
    types: e.types.map(([t, a, k]) => [t, a, k] as const),
    handoffs: e.handoffs.map(([p, s]) => [p, s] as const),
    recent: e.recent.map((h) => ({ p: h.p, from: [...h.from], ms: h.ms, records: h.records, at: h.at })),
    stats,
  };
}
