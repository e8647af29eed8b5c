// The batch envelopes (batch version 2, docs/reference/wire.md): a request batch carries each
// ask or tell, and a reply batch each reply, as an embedded msgpack value, not as a `bin` that
// holds one. A batch is then decoded in one pass (no second unpack per entry, no buffer view per
// entry), and it is written by framing bytes already encoded: each message is encoded once, when
// it is queued (its size is known for the max_payload split, an ask's bytes are reused on every
// attempt, and the owner's dedupe cache keeps a reply's bytes for retries).
import { isNat } from "@keyhold/core";
import { OK_PREFIX } from "./fast-pack.js";
import { lastScalarEnd, NOT_PLAIN, readScalar } from "./fast-read.js";
import {
  BATCH_VERSION,
  checkReply,
  checkRequest,
  type Decoded,
  type HandlerMessage,
  type InboundRequest,
  isError,
  MAX_BATCH_ENTRIES,
  type Reply,
  unpackV1,
} from "./wire.js";

/** What framing adds per entry at most: a fixarray(2) and a float64 or uint32 `q`. */
export const ENTRY_FRAMING_BYTES = 10;

/** Entries queued for one batch: parallel arrays, no tuple per entry. */
export interface EntryList {
  readonly qs: number[];
  readonly data: Uint8Array[];
  /** Bytes of `data` plus framing. */
  bytes: number;
}

const utf8 = new TextEncoder();

/** `{ v: 1, k, bv, [rs,] <last key> }` up to the array header of the entries. */
function prefix(kind: "batch" | "replies", rs: string | undefined): Uint8Array {
  const parts: number[] = [rs === undefined ? 0x84 : 0x85];
  const str = (s: string) => {
    const b = utf8.encode(s);
    if (b.length < 32) parts.push(0xa0 | b.length);
    else if (b.length < 256) parts.push(0xd9, b.length);
    else parts.push(0xda, b.length >> 8, b.length & 0xff);
    for (const x of b) parts.push(x);
  };
  str("v");
  parts.push(0x01);
  str("k");
  str(kind);
  str("bv");
  parts.push(BATCH_VERSION);
  if (rs !== undefined) {
    str("rs");
    str(rs);
    str("m");
  } else str("r");
  return Uint8Array.from(parts);
}

const REPLIES_PREFIX = prefix("replies", undefined);

/**
 * Writes a batch around messages encoded already. The result is plain msgpack: a map whose
 * entries array holds `[q, <message>]` pairs. `rs` undefined writes a reply batch.
 */
export class EnvelopeWriter {
  #rs: string | undefined;
  #prefix: Uint8Array | undefined;
  readonly #replies = REPLIES_PREFIX;

  write(list: EntryList, rs: string | undefined): Uint8Array {
    let head: Uint8Array;
    if (rs === undefined) head = this.#replies;
    else {
      if (this.#prefix === undefined || this.#rs !== rs) {
        this.#prefix = prefix("batch", rs);
        this.#rs = rs;
      }
      head = this.#prefix;
    }
    const n = list.qs.length;
    const out = new Uint8Array(head.length + 5 + list.bytes);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    out.set(head, 0);
    let o = head.length;
    out[o] = 0xdd; // array32
    view.setUint32(o + 1, n);
    o += 5;
    for (let i = 0; i < n; i++) {
      const q = list.qs[i]!;
      out[o++] = 0x92;
      if (q < 0x80) out[o++] = q;
      else if (q <= 0xffffffff) {
        out[o] = 0xce;
        view.setUint32(o + 1, q);
        o += 5;
      } else {
        out[o] = 0xcb;
        view.setFloat64(o + 1, q);
        o += 9;
      }
      const d = list.data[i]!;
      out.set(d, o);
      o += d.length;
    }
    return out.subarray(0, o);
  }
}

/**
 * One entry of a request batch, checked: an ask (its correlation number `entry[0]`, checked
 * too) or a tell; else why not.
 */
export function checkEntry(entry: unknown, rs: string): HandlerMessage | string {
  if (!Array.isArray(entry) || entry.length !== 2 || !isNat(entry[0], Number.MAX_SAFE_INTEGER))
    return "not a [q, message] pair";
  const msg: Decoded<InboundRequest> = checkRequest(entry[1]);
  if (isError(msg)) return msg.error;
  const q = entry[0];
  if (msg.k === "ask") return q >= 1 && rs !== "" ? msg : "an ask without a reply subject";
  if (msg.k === "tell") return q === 0 ? msg : "a tell with a correlation number";
  return `a ${msg.k} inside a batch`;
}

/** What a reply batch holds: per ask, its checked reply (or why it failed the checks). */
export interface ReplyBatch {
  readonly qs: number[];
  readonly replies: Decoded<Reply>[];
  /** Entries dropped: not a `[q >= 1, reply]` pair. */
  readonly malformed: number;
}

/** Decodes a reply batch in one pass; never throws. */
export function decodeReplyBatch(data: Uint8Array): Decoded<ReplyBatch> {
  const m = unpackV1(data);
  if (typeof m.error === "string" && m.k === undefined) return { error: m.error };
  if (m.k !== "replies") return { error: "not a reply batch" };
  if (m.bv !== BATCH_VERSION) return { error: "unknown batch version" };
  if (!Array.isArray(m.r) || m.r.length > MAX_BATCH_ENTRIES) return { error: "bad entries" };
  const qs: number[] = [];
  const replies: Decoded<Reply>[] = [];
  let malformed = 0;
  for (const e of m.r as unknown[]) {
    if (!Array.isArray(e) || e.length !== 2 || !isNat(e[0], Number.MAX_SAFE_INTEGER) || e[0] < 1) {
      malformed++;
      continue;
    }
    qs.push(e[0]);
    replies.push(checkReply(e[1]));
  }
  return { qs, replies, malformed };
}

/** A reply batch of plain `ok` replies only: per ask, its result. */
export interface OkBatch {
  readonly qs: number[];
  readonly rs: unknown[];
}

/**
 * The fast path of a reply batch (the asker's common case): when `data` is a batch as
 * EnvelopeWriter writes it whose every entry is `[q >= 1, { v: 1, k: "ok", r }]` with a plain
 * scalar `r` (fast-pack.ts encodeOk), its q's and results are read straight from the bytes, with
 * no map or reply object per entry. Anything else (another reply, a nested result, another
 * writer's encoding, malformed or trailing bytes) returns undefined: decodeReplyBatch then reads
 * the batch, counts what is malformed and drops it. Where it reads a batch, it reads what
 * decodeReplyBatch reads (batch-codec.test.ts). Never throws.
 */
export function readOkBatch(data: Uint8Array): OkBatch | undefined {
  const head = REPLIES_PREFIX;
  const end = data.length;
  if (end < head.length + 5) return undefined;
  for (let i = 0; i < head.length; i++) if (data[i] !== head[i]) return undefined;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let o = head.length;
  if (data[o] !== 0xdd) return undefined;
  const n = dv.getUint32(o + 1);
  o += 5;
  if (n > MAX_BATCH_ENTRIES || n * 16 > end - o) return undefined; // an entry is 16 bytes at least
  const qs: number[] = [];
  const rs: unknown[] = [];
  const ok = OK_PREFIX;
  for (let k = 0; k < n; k++) {
    if (o + 2 > end || data[o] !== 0x92) return undefined;
    const b = data[o + 1]!;
    let q: number;
    if (b >= 1 && b < 0x80) {
      q = b;
      o += 2;
    } else if (b === 0xce && o + 6 <= end) {
      q = dv.getUint32(o + 2);
      o += 6;
    } else if (b === 0xcb && o + 10 <= end) {
      q = dv.getFloat64(o + 2);
      o += 10;
    } else return undefined;
    if (q < 1 || !Number.isSafeInteger(q)) return undefined;
    if (o + ok.length > end) return undefined;
    for (let i = 0; i < ok.length; i++) if (data[o + i] !== ok[i]) return undefined;
    const r = readScalar(data, dv, o + ok.length);
    if (r === NOT_PLAIN) return undefined;
    o = lastScalarEnd();
    qs.push(q);
    rs.push(r);
  }
  return o === end ? { qs, rs } : undefined;
}
