// Entity messages on the wire (asks, tells, replies, hand-off pulls and acks): msgpack maps,
// validated on the way in; and the check that user values will survive the trip.
import { ID_PATTERN } from "@keyhold/core";
import { Packr } from "msgpackr";
import { NotSerializableError, type WireError } from "./errors.js";

export const ACTOR_WIRE_VERSION = 1;
/** Most hops a tell is forwarded between nodes that disagree about its owner. */
export const MAX_HOPS = 4;
const MAX_KEY = 1024;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" });

export interface AskMessage {
  readonly v: 1;
  readonly k: "ask" | "tell";
  /** Message id (uuid), the dedupe key. */
  readonly id: string;
  readonly t: string;
  readonly key: string;
  readonly h: string;
  readonly a: readonly unknown[];
  readonly hop: number;
}

export interface PullMessage {
  readonly v: 1;
  readonly k: "pull";
  /** The partition the sender acquired. */
  readonly p: number;
  readonly from: string;
  /** Where to continue in a partition whose records span several replies. */
  readonly c?: number | undefined;
}

export interface AckMessage {
  readonly v: 1;
  readonly k: "ack";
  readonly p: number;
  readonly from: string;
}

/** Copies of entity records, from a primary to a replica (one write, or a refill). */
export interface ReplicateMessage {
  readonly v: 1;
  readonly k: "rep";
  readonly p: number;
  readonly from: string;
  readonly recs: readonly EntityRecord[];
}

export type InboundRequest = AskMessage | PullMessage | AckMessage | ReplicateMessage;

/** One entity's state as it moves between nodes. */
export interface EntityRecord {
  readonly t: string;
  readonly key: string;
  readonly s: unknown;
  /** Bumped on every handled message; a lower version never overwrites a higher one. */
  readonly ver: number;
  /** Whether the entity was live on the old owner (so the new owner activates it eagerly). */
  readonly act: boolean;
  /**
   * The last asks applied to a replicated or stored entity: [id, ok, result or wire error].
   * They travel with the state so that an ask retried after a failover or hand-off is
   * answered from here instead of being applied twice.
   */
  readonly ids?: readonly RecentAsk[] | undefined;
}

/** One applied ask remembered with an entity: [message id, succeeded, result or WireError]. */
export type RecentAsk = readonly [string, boolean, unknown];

/** How many applied asks an entity remembers. */
export const RECENT_ASKS = 8;

export type Reply =
  | { readonly v: 1; readonly k: "ok"; readonly r: unknown }
  | { readonly v: 1; readonly k: "err"; readonly e: WireError }
  | { readonly v: 1; readonly k: "moved"; readonly owner: string | null }
  | { readonly v: 1; readonly k: "repok"; readonly n: number }
  /** Answer to a pull: `wait` while the old owner still owns or is draining the partition. */
  | {
      readonly v: 1;
      readonly k: "states";
      readonly p: number;
      readonly status: "ok" | "wait";
      readonly recs: readonly EntityRecord[];
      /** Cursor of the next page, when the partition's records did not fit in one reply. */
      readonly next?: number | undefined;
    };

export function encode(msg: InboundRequest | Reply): Uint8Array {
  return packr.pack(msg);
}

export type Decoded<T> = T | { readonly error: string };

const isObj = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);
const isId = (x: unknown): x is string => typeof x === "string" && ID_PATTERN.test(x);
const isNat = (x: unknown, max: number): x is number =>
  typeof x === "number" && Number.isSafeInteger(x) && x >= 0 && x <= max;
const isUuid = (x: unknown): x is string => typeof x === "string" && x.length >= 8 && x.length <= 64;

/** A msgpack map of our wire version, or `{ error }` (a map carrying `k` is never an error). */
function unpackV1(data: Uint8Array): Record<string, unknown> {
  let m: unknown;
  try {
    if (data.length === 0) return { error: "empty" };
    m = packr.unpack(data);
  } catch {
    return { error: "not msgpack" };
  }
  if (!isObj(m) || m.v !== ACTOR_WIRE_VERSION) return { error: "not a v1 map" };
  return m;
}

/** Decodes and validates a request to a node; never throws. */
export function decodeRequest(data: Uint8Array): Decoded<InboundRequest> {
  const m = unpackV1(data);
  if ("error" in m && typeof m.error === "string" && m.k === undefined) return { error: m.error };
  switch (m.k) {
    case "ask":
    case "tell":
      if (!isUuid(m.id)) return { error: "bad id" };
      if (!isId(m.t)) return { error: "bad entity type" };
      if (typeof m.key !== "string" || m.key.length === 0 || m.key.length > MAX_KEY)
        return { error: "bad key" };
      if (typeof m.h !== "string" || m.h.length === 0 || m.h.length > 128) return { error: "bad handler" };
      if (!Array.isArray(m.a) || m.a.length > 64) return { error: "bad args" };
      if (!isNat(m.hop, MAX_HOPS)) return { error: "bad hop count" };
      return { v: 1, k: m.k, id: m.id, t: m.t, key: m.key, h: m.h, a: m.a, hop: m.hop };
    case "pull":
    case "ack":
      if (!isNat(m.p, 65535)) return { error: "bad partition" };
      if (!isId(m.from)) return { error: "bad sender" };
      if (m.c !== undefined && !isNat(m.c, 100_000_000)) return { error: "bad cursor" };
      if (m.k === "pull" && m.c !== undefined) return { v: 1, k: "pull", p: m.p, from: m.from, c: m.c };
      return { v: 1, k: m.k, p: m.p, from: m.from };
    case "rep": {
      if (!isNat(m.p, 65535)) return { error: "bad partition" };
      if (!isId(m.from)) return { error: "bad sender" };
      const recs = decodeRecords(m.recs);
      if (recs === undefined) return { error: "bad records" };
      return { v: 1, k: "rep", p: m.p, from: m.from, recs };
    }
    default:
      return { error: "unknown kind" };
  }
}

/** Validated entity records, or undefined when any is malformed. */
function decodeRecords(x: unknown): EntityRecord[] | undefined {
  if (!Array.isArray(x) || x.length > 1_000_000) return undefined;
  const recs: EntityRecord[] = [];
  for (const r of x as unknown[]) {
    if (
      !isObj(r) ||
      !isId(r.t) ||
      typeof r.key !== "string" ||
      r.key.length === 0 ||
      r.key.length > MAX_KEY
    ) {
      return undefined;
    }
    if (!isNat(r.ver, Number.MAX_SAFE_INTEGER) || typeof r.act !== "boolean") return undefined;
    let ids: RecentAsk[] | undefined;
    if (r.ids !== undefined) {
      if (!Array.isArray(r.ids) || r.ids.length > RECENT_ASKS) return undefined;
      ids = [];
      for (const e of r.ids as unknown[]) {
        if (!Array.isArray(e) || e.length !== 3 || !isUuid(e[0]) || typeof e[1] !== "boolean")
          return undefined;
        ids.push([e[0], e[1], e[2]]);
      }
    }
    recs.push(
      ids
        ? { t: r.t, key: r.key, s: r.s, ver: r.ver, act: r.act, ids }
        : { t: r.t, key: r.key, s: r.s, ver: r.ver, act: r.act },
    );
  }
  return recs;
}

/** Decodes and validates a reply; never throws. */
export function decodeReply(data: Uint8Array): Decoded<Reply> {
  const m = unpackV1(data);
  if ("error" in m && typeof m.error === "string" && m.k === undefined) return { error: m.error };
  switch (m.k) {
    case "ok":
      return { v: 1, k: "ok", r: m.r };
    case "err": {
      const e = m.e;
      if (!isObj(e) || typeof e.code !== "string" || typeof e.message !== "string")
        return { error: "bad error" };
      return {
        v: 1,
        k: "err",
        e: {
          code: e.code.slice(0, 64),
          message: e.message.slice(0, 4096),
          name: typeof e.name === "string" ? e.name.slice(0, 64) : undefined,
          details: e.details,
          retryable: e.retryable === true,
        },
      };
    }
    case "moved":
      if (m.owner !== null && !isId(m.owner)) return { error: "bad owner" };
      return { v: 1, k: "moved", owner: m.owner };
    case "states": {
      if (!isNat(m.p, 65535) || (m.status !== "ok" && m.status !== "wait")) return { error: "bad states" };
      const recs = decodeRecords(m.recs);
      if (recs === undefined) return { error: "bad record" };
      if (m.next !== undefined && !isNat(m.next, 100_000_000)) return { error: "bad cursor" };
      return { v: 1, k: "states", p: m.p, status: m.status, recs, next: m.next };
    }
    case "repok":
      if (!isNat(m.n, 1_000_000)) return { error: "bad repok" };
      return { v: 1, k: "repok", n: m.n };
    default:
      return { error: "unknown kind" };
  }
}

export function isError<T>(d: Decoded<T>): d is { readonly error: string } {
  return typeof d === "object" && d !== null && "error" in d && Object.keys(d).length === 1;
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * Throws NotSerializableError unless `value` survives msgpack unchanged in meaning: primitives
 * (not symbols; bigints within 64 bits), Date, Uint8Array, arrays and plain objects, acyclic
 * and at most 64 deep. Map, Set and class instances are refused rather than silently turned
 * into plain objects on the other side.
 */
export function assertSerializable(value: unknown, what: string, path = "value", depth = 0): void {
  if (depth > 64) throw new NotSerializableError(what, path, "nested more than 64 levels (a cycle?)");
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
    case "undefined":
      return;
    case "bigint":
      if (value < INT64_MIN || value > UINT64_MAX)
        throw new NotSerializableError(what, path, "a bigint beyond 64 bits");
      return;
    case "function":
      throw new NotSerializableError(what, path, "a function");
    case "symbol":
      throw new NotSerializableError(what, path, "a symbol");
  }
  if (value === null || value instanceof Date || value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) assertSerializable(value[i], what, `${path}[${i}]`, depth + 1);
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as object).constructor?.name ?? "an object with a prototype";
    throw new NotSerializableError(
      what,
      path,
      `a ${name} (only plain objects, arrays, Date and Uint8Array travel)`,
    );
  }
  for (const k of Object.keys(value as object)) {
    assertSerializable((value as Record<string, unknown>)[k], what, `${path}.${k}`, depth + 1);
  }
}

/**
 * Most bytes of records one message carries. NATS refuses messages over the server's
 * max_payload (1 MB by default), so hand-offs and refills travel in pages of this size.
 */
export const PAGE_BYTES = 256 * 1024;

/**
 * Splits records into pages of about PAGE_BYTES encoded (a single record larger than that
 * gets a page of its own, and the server may refuse it). Throws NotSerializableError for a
 * record whose state cannot be encoded.
 */
export function pageRecords(
  recs: readonly EntityRecord[],
  from = 0,
): { page: EntityRecord[]; next: number | undefined } {
  const page: EntityRecord[] = [];
  let bytes = 0;
  let i = from;
  for (; i < recs.length; i++) {
    const size = packr.pack(recs[i]).length;
    if (page.length > 0 && bytes + size > PAGE_BYTES) break;
    page.push(recs[i]!);
    bytes += size;
  }
  return { page, next: i < recs.length ? i : undefined };
}

/** Subjects of entity traffic: one inbox subject per node. */
export function nodeSubject(cluster: string, nodeId: string): string {
  return `keyhold.${cluster}.node.${nodeId}`;
}
