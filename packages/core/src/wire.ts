// Membership messages on the wire: msgpack maps with a version field, and the validation every
// inbound message goes through before it touches any state.
import { Packr } from "msgpackr";
import { type ClusterConfig, MAX_RING_SIZE } from "./options.js";
import { isId, isObj } from "./validate.js";

export const WIRE_VERSION = 1;
/** The most lease entries one sync reply may carry; more is treated as hostile. */
export const MAX_SYNC_ENTRIES = 10_000;
/**
 * Largest heartbeat, leave or sync request accepted (they are under 300 bytes): bigger input on
 * those subjects is dropped before it is unpacked, so junk cannot stall the event loop long
 * enough to cost this node its lease. Only sync replies may be larger.
 */
export const MAX_SMALL_MESSAGE_BYTES = 4096;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

export interface HeartbeatMessage {
  readonly v: 1;
  readonly k: "hb";
  readonly id: string;
  /** The sender's wall-clock time when it emitted this heartbeat, ms since the epoch. */
  readonly at: number;
  readonly cfg: ClusterConfig;
  /**
   * The sender's admission front while it joins step by step (join-steps.ts): it may own only
   * partitions below it. Absent once it is uncapped (and from senders that never step).
   */
  readonly adm?: number;
}

export interface LeaveMessage {
  readonly v: 1;
  readonly k: "leave";
  readonly id: string;
  readonly at: number;
}

export interface SyncRequestMessage {
  readonly v: 1;
  readonly k: "sync";
  readonly id: string;
  readonly cfg: ClusterConfig;
}

export interface SyncReplyMessage {
  readonly v: 1;
  readonly k: "table";
  readonly id: string;
  readonly cfg: ClusterConfig;
  /** [member id, emitted] of every lease the responder holds. */
  readonly leases: ReadonlyArray<readonly [string, number]>;
  /** [member id, left at] of recent graceful leaves. */
  readonly left: ReadonlyArray<readonly [string, number]>;
  /**
   * [member id, admission front] of the members the responder sees joining or leaving step by
   * step, itself included (join-steps.ts); absent when none is. A joiner places with these
   * until it hears each member's own heartbeat.
   */
  readonly adm?: ReadonlyArray<readonly [string, number]>;
}

export type MembershipMessage = HeartbeatMessage | LeaveMessage | SyncRequestMessage | SyncReplyMessage;

export function encode(msg: MembershipMessage): Uint8Array {
  return packr.pack(msg);
}

/** Why an inbound message was dropped. */
export type Malformed = { readonly error: string };

// Wall-clock ms: positive, an integer, below year 10000.
const isTime = (x: unknown): x is number =>
  typeof x === "number" && Number.isSafeInteger(x) && x > 0 && x < 253402300800000;
const isPosInt = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

function validConfig(x: unknown): x is ClusterConfig {
  return (
    isObj(x) &&
    isPosInt(x.ringSize) &&
    isPosInt(x.heartbeatMs) &&
    isPosInt(x.ttlMs) &&
    isPosInt(x.skewMs) &&
    typeof x.hash === "string" &&
    x.hash.length <= 64 &&
    (x.protocol === undefined || (typeof x.protocol === "string" && x.protocol.length <= 64)) &&
    (x.fencingTokens === undefined ||
      (typeof x.fencingTokens === "string" && x.fencingTokens.length <= 64)) &&
    (x.leases === undefined || x.leases === "jetstream" || x.leases === "echo")
  );
}

function validPairs(
  x: unknown,
  max: number,
  valid: (v: unknown) => v is number = isTime,
): x is [string, number][] {
  return (
    Array.isArray(x) &&
    x.length <= max &&
    x.every((e) => Array.isArray(e) && e.length === 2 && isId(e[0]) && valid(e[1]))
  );
}
const isFront = (x: unknown): x is number => isPosInt(x) && x <= MAX_RING_SIZE;

/** Unpacks a msgpack map of `max` bytes at most whose `v` is `version`; never throws. */
export function unpackMap(
  data: Uint8Array,
  max: number,
  version: number,
  label: string,
): { readonly map: Record<string, unknown> } | Malformed {
  if (!(data instanceof Uint8Array) || data.length === 0) return { error: "empty" };
  if (data.length > max) return { error: "too large" };
  let m: unknown;
  try {
    m = packr.unpack(data);
  } catch {
    return { error: "not msgpack" };
  }
  if (!isObj(m)) return { error: "not a map" };
  if (m.v !== version) return { error: `unknown ${label} version ${String(m.v).slice(0, 20)}` };
  return { map: m };
}

/** Decodes and validates; never throws. Input over `maxBytes` is dropped unread. */
export function decode(data: Uint8Array, maxBytes = 1_048_576): MembershipMessage | Malformed {
  const u = unpackMap(data, maxBytes, WIRE_VERSION, "wire");
  if (!("map" in u)) return u;
  const m = u.map;
  if (!isId(m.id)) return { error: "bad id" };
  switch (m.k) {
    case "hb":
      if (!isTime(m.at)) return { error: "bad heartbeat time" };
      if (!validConfig(m.cfg)) return { error: "bad config" };
      if (m.adm !== undefined && !isFront(m.adm)) return { error: "bad admission front" };
      return {
        v: 1,
        k: "hb",
        id: m.id,
        at: m.at,
        cfg: pickConfig(m.cfg),
        ...(m.adm !== undefined ? { adm: m.adm } : {}),
      };
    case "leave":
      if (!isTime(m.at)) return { error: "bad leave time" };
      return { v: 1, k: "leave", id: m.id, at: m.at };
    case "sync":
      if (!validConfig(m.cfg)) return { error: "bad config" };
      return { v: 1, k: "sync", id: m.id, cfg: pickConfig(m.cfg) };
    case "table":
      if (!validConfig(m.cfg)) return { error: "bad config" };
      if (!validPairs(m.leases, MAX_SYNC_ENTRIES)) return { error: "bad leases" };
      if (!validPairs(m.left, MAX_SYNC_ENTRIES)) return { error: "bad left" };
      if (m.adm !== undefined && !validPairs(m.adm, MAX_SYNC_ENTRIES, isFront))
        return { error: "bad admission fronts" };
      return {
        v: 1,
        k: "table",
        id: m.id,
        cfg: pickConfig(m.cfg),
        leases: m.leases,
        left: m.left,
        ...(m.adm !== undefined ? { adm: m.adm } : {}),
      };
    default:
      return { error: "unknown kind" };
  }
}

// Copy only known fields, so extra keys from a peer never leak into our objects. A peer that
// sends no lease mode predates the option and renews by echo.
function pickConfig(c: ClusterConfig): ClusterConfig {
  const picked = {
    ringSize: c.ringSize,
    heartbeatMs: c.heartbeatMs,
    ttlMs: c.ttlMs,
    skewMs: c.skewMs,
    hash: c.hash,
    leases: c.leases ?? "echo",
  };
  return {
    ...picked,
    ...(c.protocol !== undefined ? { protocol: c.protocol } : {}),
    ...(c.fencingTokens !== undefined ? { fencingTokens: c.fencingTokens } : {}),
  };
}

export function isMalformed(x: MembershipMessage | Malformed): x is Malformed {
  return "error" in x;
}

/** The heartbeat subject of one member in jetstream mode (a token of `memberHeartbeats`). */
export function memberHeartbeatSubject(cluster: string, id: string): string {
  return `keyhold.${cluster}.hb.${id}`;
}

/** Subjects of one cluster. */
export function subjects(cluster: string) {
  const base = `keyhold.${cluster}`;
  return {
    /** Heartbeats in echo mode. */
    heartbeat: `${base}.hb`,
    /** Heartbeats in jetstream mode: one subject per member, each stored once in the stream. */
    memberHeartbeats: `${base}.hb.*`,
    leave: `${base}.leave`,
    sync: `${base}.sync`,
  } as const;
}
