// The batch envelopes (batch version 2, docs/reference/wire.md): a request batch carries each
// ask or tell, and a reply batch each reply, as an embedded msgpack value, not as a `bin` that
// holds one. A batch is then decoded in one pass (no second unpack per entry, no buffer view per
// entry), and it is written by framing bytes already encoded: each message is encoded once, when
// it is queued (its size is known for the max_payload split, an ask's bytes are reused on every
// attempt, and the owner's dedupe cache keeps a reply's bytes for retries).
import { isNat } from "@keyhold/core";
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

/**
 * Writes a batch around messages encoded already. The result is plain msgpack: a map whose
 * entries array holds `[q, <message>]` pairs. `rs` undefined writes a reply batch.
 */
export class EnvelopeWriter {
  #rs: string | undefined;
  #prefix: Uint8Array | undefined;
  readonly #replies = prefix("replies", undefined);

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
