// Entity messages on the wire (asks, tells, replies, hand-off pulls and acks, replica copies):
// msgpack codecs only, every inbound message validated before it touches any state.
import { isId, isNat, isObj } from "@keyhold/core";
import { Packr } from "msgpackr";
import {
  COPY_BATCH_VERSION,
  type CopyBatchMessage,
  type CopyEntry,
  decodeCopyBatch,
  decodeCopyEntries,
} from "./copy-wire.js";
import { isValidEntityKey } from "./entity.js";
import type { WireError } from "./errors.js";
import { DecodedRep, encodeRep, toWireRecord } from "./record-wire.js";
import { decodeReminders, type WireReminder } from "./reminders.js";

export { encodeRep, PAGE_BYTES, pageRecords } from "./record-wire.js";

export const ACTOR_WIRE_VERSION = 1;
/** Version of the batch envelope (`batch`, `replies`): docs/reference/wire.md. */
export const BATCH_VERSION = 2;
/**
 * What this code speaks, compared at join (core's `protocol` option): a node that speaks
 * another message or batch version is refused like a node with another ring size.
 */
export const ACTOR_PROTOCOL = `keyhold-actors/${ACTOR_WIRE_VERSION}+batch/${BATCH_VERSION}+copies/${COPY_BATCH_VERSION}`;
/** Most entries a batch may carry; more is malformed. */
export const MAX_BATCH_ENTRIES = 65_536;
/** Most hops a tell is forwarded between nodes that disagree about its owner. */
export const MAX_HOPS = 4;

/** The one msgpack codec of entity messages (ask-codec.ts shares it). */
export const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" });

/** An ask or a tell: one handler call for one entity. */
export interface HandlerMessage {
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
  /**
   * The epoch (fencing token) the puller took for `p`. The holder raises its own floor for
   * `p` to it before answering, so copies of an older tenure arriving later are refused.
   * Absent from senders before epochs (read as 0: no fence).
   */
  readonly ep?: number | undefined;
}

export interface AckMessage {
  readonly v: 1;
  readonly k: "ack";
  readonly p: number;
  readonly from: string;
  /** The epoch of the pull whose records it acknowledges (the holder forgets only those). */
  readonly ep?: number | undefined;
}

/** Copies of entity records, from a primary to a replica (one write, or a refill). */
export interface ReplicateMessage {
  readonly v: 1;
  readonly k: "rep";
  readonly p: number;
  readonly from: string;
  readonly recs: readonly EntityRecord[];
  /**
   * The sender's epoch (fencing token) for `p`: its current tenure. A replica that has seen a
   * higher epoch for `p` refuses the copies with `stale`. Absent: 0 (a sender before epochs).
   */
  readonly ep?: number | undefined;
  /**
   * Decoded messages only: the copies as a replica judges them, records still packed (copy
   * version 2). `recs` of a decoded version 2 message unpacks them on each read (tests, tools).
   */
  readonly copies?: readonly CopyEntry[] | undefined;
}

/** Asks and tells to one node, sent in one turn of the event loop: each entry decoded alone. */
export interface BatchMessage {
  readonly v: 1;
  readonly k: "batch";
  readonly bv: typeof BATCH_VERSION;
  /** Where the replies go (the asker's inbox); empty when the batch holds only tells. */
  readonly rs: string;
  /**
   * The entries, unchecked: each should be `[q, ask or tell]` (batch-codec.ts checkEntry). `q`
   * is the asker's correlation number of an ask (>= 1) or 0 for a tell.
   */
  readonly m: readonly unknown[];
}

type OneRequest = HandlerMessage | PullMessage | AckMessage | ReplicateMessage | BatchMessage;
export type InboundRequest = OneRequest | CopyBatchMessage;

/** One entity's state as it moves between nodes. */
export interface EntityRecord {
  readonly t: string;
  readonly key: string;
  readonly s: unknown;
  /** Bumped on every handled message; a lower version never overwrites a higher one. */
  readonly ver: number;
  /**
   * The epoch (fencing token) of the partition tenure that wrote this version (absent: 0, a
   * pre-fence record). It orders records before `ver` does: see `isNewer` in slots.ts.
   */
  readonly acq?: number | undefined;
  /** Whether the entity was live on the old owner (so the new owner activates it eagerly). */
  readonly act: boolean;
  /**
   * The last asks applied to a replicated or stored entity: [id, ok, result or wire error].
   * They travel with the state so that an ask retried after a failover or hand-off is
   * answered from here instead of being applied twice. On the wire this field is `ids`.
   */
  readonly recent?: readonly RecentAsk[] | undefined;
  /** The entity's pending reminders (reminders.ts); absent when it has none. */
  readonly rem?: readonly WireReminder[] | undefined;
}

/** One applied ask remembered with an entity: [message id, succeeded, result or WireError]. */
export type RecentAsk = readonly [string, boolean, unknown];

/** How many applied asks an entity remembers (besides those whose answers group commit holds). */
export const RECENT_ASKS = 8;
/** Most answers group commit holds per entity (commit.ts); a record may carry that many more ids. */
export const MAX_HELD_ANSWERS = 256;

export type Reply =
  | { readonly v: 1; readonly k: "ok"; readonly r: unknown }
  | { readonly v: 1; readonly k: "err"; readonly e: WireError }
  | { readonly v: 1; readonly k: "moved"; readonly owner: string | null }
  | { readonly v: 1; readonly k: "repok"; readonly n: number }
  /**
   * A replica refused `n` copies: the sender is not the primary its view names (`primary`, or
   * null when it sees none), or it holds a newer version. Never counts toward a quorum.
   */
  | {
      readonly v: 1;
      readonly k: "stale";
      readonly n: number;
      readonly primary: string | null;
      /** The replica's highest epoch for the partition, when above the sender's. */
      readonly ep?: number | undefined;
    }
  /** Answer to a pull: `wait` while the old owner still owns or is draining the partition. */
  | {
      readonly v: 1;
      readonly k: "states";
      readonly p: number;
      readonly status: "ok" | "wait";
      readonly recs: readonly EntityRecord[];
      /** Cursor of the next page, when the partition's records did not fit in one reply. */
      readonly next?: number | undefined;
      /** With `wait`: the holder is still draining the partition (see BUSY_PATIENCE_FACTOR). */
      readonly busy?: boolean | undefined;
    };

export function encode(msg: InboundRequest | Reply): Uint8Array {
  if (msg.k === "rep" && msg.recs.length > 0) return encodeRep(msg.p, msg.from, msg.recs, msg.ep);
  if (msg.k === "states" && msg.recs.length > 0)
    return packr.pack({ ...msg, recs: msg.recs.map(toWireRecord) });
  return packr.pack(msg);
}

export type Decoded<T> = T | { readonly error: string };

// Message ids are uuids from our senders, but only their length is checked: any 8-64 character
// string serves as a dedupe key.
const isMessageId = (x: unknown): x is string => typeof x === "string" && x.length >= 8 && x.length <= 64;

/** A msgpack map of our wire version, or `{ error }` (a map carrying `k` is never an error). */
export function unpackV1(data: Uint8Array): Record<string, unknown> {
  let m: unknown;
  try {
    if (data.length === 0) return { error: "empty" };
    m = packr.unpack(data);
  } catch {
    return { error: "not msgpack" };
  }
  return asV1(m);
}

function asV1(m: unknown): Record<string, unknown> {
  if (!isObj(m) || m.v !== ACTOR_WIRE_VERSION) return { error: "not a v1 map" };
  return m;
}

/** The `{ error }` of unpackV1 (a map carrying `k` is a message, whatever else it holds). */
function notUnpacked(m: Record<string, unknown>): m is { error: string } {
  return typeof m.error === "string" && m.k === undefined;
}

/** Decodes and validates a request to a node; never throws. */
export function decodeRequest(data: Uint8Array): Decoded<InboundRequest> {
  return requestOf(unpackV1(data));
}

/** Validates a request already unpacked (an entry of a batch); never throws. */
export function checkRequest(x: unknown): Decoded<InboundRequest> {
  return requestOf(asV1(x));
}

function requestOf(m: Record<string, unknown>): Decoded<InboundRequest> {
  if (notUnpacked(m)) return { error: m.error };
  switch (m.k) {
    case "ask":
    case "tell":
      if (!isMessageId(m.id)) return { error: "bad id" };
      if (!isId(m.t)) return { error: "bad entity type" };
      if (!isValidEntityKey(m.key)) return { error: "bad key" };
      if (typeof m.h !== "string" || m.h.length === 0 || m.h.length > 128) return { error: "bad handler" };
      if (!Array.isArray(m.a) || m.a.length > 64) return { error: "bad args" };
      if (!isNat(m.hop, MAX_HOPS)) return { error: "bad hop count" };
      // Every field it is read for is checked; the map itself serves (no copy per message).
      return m as unknown as HandlerMessage;
    case "pull":
    case "ack":
      if (!isNat(m.p, 65535)) return { error: "bad partition" };
      if (!isId(m.from)) return { error: "bad sender" };
      if (m.c !== undefined && !isNat(m.c, 100_000_000)) return { error: "bad cursor" };
      if (m.ep !== undefined && !isNat(m.ep, Number.MAX_SAFE_INTEGER)) return { error: "bad epoch" };
      if (m.k === "pull")
        return {
          v: 1,
          k: "pull",
          p: m.p,
          from: m.from,
          ...(m.c !== undefined ? { c: m.c } : {}),
          ...(m.ep !== undefined ? { ep: m.ep } : {}),
        };
      return { v: 1, k: m.k, p: m.p, from: m.from, ...(m.ep !== undefined ? { ep: m.ep } : {}) };
    case "batch":
      if (m.bv !== BATCH_VERSION) return { error: "unknown batch version" };
      if (typeof m.rs !== "string" || m.rs.length > 256 || /\s/.test(m.rs))
        return { error: "bad reply subject" };
      if (!Array.isArray(m.m) || m.m.length > MAX_BATCH_ENTRIES) return { error: "bad entries" };
      // Entries are checked one by one where they are served: a bad one never fails the rest.
      return { v: 1, k: "batch", bv: BATCH_VERSION, rs: m.rs, m: m.m };
    case "rep": {
      if (!isNat(m.p, 65535)) return { error: "bad partition" };
      if (!isId(m.from)) return { error: "bad sender" };
      if (m.ep !== undefined && !isNat(m.ep, Number.MAX_SAFE_INTEGER)) return { error: "bad epoch" };
      if (m.cv === COPY_BATCH_VERSION) {
        const copies = decodeCopyEntries(m.c);
        if (copies === undefined) return { error: "bad copies" };
        return new DecodedRep(m.p, m.from, copies, m.ep as number | undefined);
      }
      // Copy version 1: every record unpacked and checked, then held packed like version 2.
      const recs = decodeRecords(m.recs);
      if (recs === undefined) return { error: "bad records" };
      const copies = recs.map((r) => ({
        t: r.t,
        key: r.key,
        ver: r.ver,
        acq: r.acq ?? 0,
        body: packr.pack(toWireRecord(r)),
      }));
      const rep: { -readonly [K in keyof ReplicateMessage]: ReplicateMessage[K] } = {
        v: 1,
        k: "rep",
        p: m.p,
        from: m.from,
        recs,
        copies,
      };
      if (m.ep !== undefined) rep.ep = m.ep as number;
      return rep;
    }
    case "reps":
      return decodeCopyBatch(m);
    default:
      return { error: "unknown kind" };
  }
}

/** Validated entity records, or undefined when any is malformed. */
export function decodeRecords(x: unknown): EntityRecord[] | undefined {
  if (!Array.isArray(x) || x.length > 1_000_000) return undefined;
  const recs: EntityRecord[] = [];
  for (const r of x as unknown[]) {
    if (!isObj(r) || !isId(r.t) || !isValidEntityKey(r.key)) return undefined;
    if (!isNat(r.ver, Number.MAX_SAFE_INTEGER) || typeof r.act !== "boolean") return undefined;
    if (r.acq !== undefined && !isNat(r.acq, Number.MAX_SAFE_INTEGER)) return undefined;
    let recent: RecentAsk[] | undefined;
    if (r.ids !== undefined) {
      if (!Array.isArray(r.ids) || r.ids.length > RECENT_ASKS + MAX_HELD_ANSWERS) return undefined;
      // Each entry checked where it lies: the unpacked arrays are this message's own, not copied.
      for (const e of r.ids as unknown[]) {
        if (!Array.isArray(e) || e.length !== 3 || !isMessageId(e[0]) || typeof e[1] !== "boolean")
          return undefined;
      }
      recent = r.ids as RecentAsk[];
    }
    const rem = r.rem === undefined ? undefined : decodeReminders(r.rem);
    if (r.rem !== undefined && rem === undefined) return undefined;
    const rec: { -readonly [K in keyof EntityRecord]: EntityRecord[K] } = {
      t: r.t,
      key: r.key,
      s: r.s,
      ver: r.ver,
      act: r.act,
    };
    if (r.acq !== undefined) rec.acq = r.acq;
    if (recent) rec.recent = recent;
    if (rem) rec.rem = rem;
    recs.push(rec);
  }
  return recs;
}

/** Decodes and validates a reply; never throws. */
export function decodeReply(data: Uint8Array): Decoded<Reply> {
  return replyOf(unpackV1(data));
}

/** Validates a reply already unpacked (an entry of a reply batch); never throws. */
export function checkReply(x: unknown): Decoded<Reply> {
  return replyOf(asV1(x));
}

function replyOf(m: Record<string, unknown>): Decoded<Reply> {
  if (notUnpacked(m)) return { error: m.error };
  switch (m.k) {
    case "ok":
      return m as unknown as Reply; // `r` is any value: nothing more to check, nothing to copy
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
      if (m.busy !== undefined && typeof m.busy !== "boolean") return { error: "bad busy flag" };
      return { v: 1, k: "states", p: m.p, status: m.status, recs, next: m.next, busy: m.busy };
    }
    case "repok":
      if (!isNat(m.n, 1_000_000)) return { error: "bad repok" };
      return { v: 1, k: "repok", n: m.n };
    case "stale":
      if (!isNat(m.n, 1_000_000) || m.n < 1) return { error: "bad stale" };
      if (m.primary !== null && !isId(m.primary)) return { error: "bad primary" };
      if (m.ep !== undefined && !isNat(m.ep, Number.MAX_SAFE_INTEGER)) return { error: "bad epoch" };
      return { v: 1, k: "stale", n: m.n, primary: m.primary, ...(m.ep !== undefined ? { ep: m.ep } : {}) };
    default:
      return { error: "unknown kind" };
  }
}

export function isError<T>(d: Decoded<T>): d is { readonly error: string } {
  return typeof d === "object" && d !== null && "error" in d && Object.keys(d).length === 1;
}

/** Subjects of entity traffic: one inbox subject per node. */
export function nodeSubject(cluster: string, nodeId: string): string {
  return `keyhold.${cluster}.node.${nodeId}`;
}
