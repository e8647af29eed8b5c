// A hand-written msgpack writer for the two messages of the ask hot path: an ask whose arguments
// are plain scalars, an `ok` reply whose result is one (fast-read.ts reads those back in a reply
// batch). It writes exactly the bytes wire.ts `packr` writes for the same map (the wire format
// is unchanged: fast-pack.test.ts compares the bytes over random values), and hands anything
// else (nested values, bigints) to packr.
//
// packr's choices it follows: a plain object is a map16 (0xde) whatever its size, a string takes
// the smallest header for its UTF-8 length (a lone surrogate is U+FFFD), an integer the smallest
// width for its sign, any other number a float64, undefined the fixext1 0xd4 0x00 0x00.
import { packr } from "./wire.js";

/** Encoded messages are cut from slabs of this size, as packr does (no ArrayBuffer per message). */
const SLAB_BYTES = 8192;

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength);
let pos = 0;

/** Makes room for `max` bytes at `pos` (a new slab when this one is too full). */
function room(max: number): void {
  if (pos + max <= slab.length) return;
  slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, max));
  view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength);
  pos = 0;
}

/** Most bytes `v` takes when it is a plain scalar, else -1 (the value goes to packr). */
function scalarBound(v: unknown): number {
  switch (typeof v) {
    case "string":
      return v.length * 3 + 5;
    case "number":
      return 9;
    case "boolean":
      return 1;
    case "undefined":
      return 3;
    case "object":
      return v === null ? 1 : -1;
    default:
      return -1;
  }
}

/** Bytes of the header of a string of `len` UTF-8 bytes. */
function strHeader(len: number): number {
  return len < 0x20 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
}

function writeStrHeader(at: number, len: number): void {
  if (len < 0x20) slab[at] = 0xa0 | len;
  else if (len < 0x100) {
    slab[at] = 0xd9;
    slab[at + 1] = len;
  } else if (len < 0x10000) {
    slab[at] = 0xda;
    slab[at + 1] = len >> 8;
    slab[at + 2] = len & 0xff;
  } else {
    slab[at] = 0xdb;
    view.setUint32(at + 1, len);
  }
}

/** Writes `s` (room for scalarBound(s) made). */
function writeStr(s: string): void {
  const n = s.length;
  const guess = strHeader(n); // UTF-8 is never shorter than the UTF-16 length
  const body = pos + guess;
  let len = -1;
  if (n < 64) {
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      slab[body + i] = c;
    }
    if (i === n) len = n;
  }
  if (len < 0) len = slab.write(s, body, "utf8");
  const header = strHeader(len);
  if (header !== guess) slab.copyWithin(pos + header, body, body + len);
  writeStrHeader(pos, len);
  pos += header + len;
}

function writeNum(v: number): void {
  if (v >>> 0 === v) {
    if (v < 0x80) slab[pos++] = v;
    else if (v < 0x100) {
      slab[pos++] = 0xcc;
      slab[pos++] = v;
    } else if (v < 0x10000) {
      slab[pos++] = 0xcd;
      slab[pos++] = v >> 8;
      slab[pos++] = v & 0xff;
    } else {
      slab[pos++] = 0xce;
      view.setUint32(pos, v);
      pos += 4;
    }
  } else if (v >> 0 === v) {
    if (v >= -0x20) slab[pos++] = 0x100 + v;
    else if (v >= -0x80) {
      slab[pos++] = 0xd0;
      slab[pos++] = v + 0x100;
    } else if (v >= -0x8000) {
      slab[pos++] = 0xd1;
      view.setInt16(pos, v);
      pos += 2;
    } else {
      slab[pos++] = 0xd2;
      view.setInt32(pos, v);
      pos += 4;
    }
  } else {
    slab[pos++] = 0xcb;
    view.setFloat64(pos, v);
    pos += 8;
  }
}

/** Writes a plain scalar (scalarBound(v) >= 0, room made). */
function writeScalar(v: unknown): void {
  switch (typeof v) {
    case "string":
      return writeStr(v);
    case "number":
      return writeNum(v);
    case "boolean":
      slab[pos++] = v ? 0xc3 : 0xc2;
      return;
    case "undefined":
      slab[pos++] = 0xd4;
      slab[pos++] = 0;
      slab[pos++] = 0;
      return;
    default:
      slab[pos++] = 0xc0; // null
  }
}

function writeBytes(b: Uint8Array): void {
  slab.set(b, pos);
  pos += b.length;
}

const utf8 = (s: string) => Buffer.from(s, "utf8");
const key = (k: string) => Buffer.concat([Buffer.from([0xa0 | k.length]), utf8(k)]);
// `{ v: 1, k: "ask", id: ` and the keys after it; `{ v: 1, k: "ok", r: `.
const ASK_HEAD = Buffer.concat([
  Buffer.from([0xde, 0, 8]),
  key("v"),
  Buffer.from([1]),
  key("k"),
  key("ask"),
  key("id"),
]);
const KEY_T = key("t");
const KEY_KEY = key("key");
const KEY_H = key("h");
const KEY_A = key("a");
const KEY_HOP = key("hop");
const OK_HEAD = Buffer.concat([
  Buffer.from([0xde, 0, 3]),
  key("v"),
  Buffer.from([1]),
  key("k"),
  key("ok"),
  key("r"),
]);
const ASK_FIXED =
  ASK_HEAD.length + KEY_T.length + KEY_KEY.length + KEY_H.length + KEY_A.length + KEY_HOP.length;

/** Most bytes of the arguments as a plain array of scalars, else -1. */
function argsBound(a: readonly unknown[]): number {
  if (!Array.isArray(a)) return -1;
  let max = 5;
  for (let i = 0; i < a.length; i++) {
    const b = scalarBound(a[i]);
    if (b < 0) return -1;
    max += b;
  }
  return max;
}

/** Writes the ask from `t` on, after its id (room made). */
function writeAskTail(t: string, key: string, h: string, a: readonly unknown[], hop: number): void {
  writeBytes(KEY_T);
  writeStr(t);
  writeBytes(KEY_KEY);
  writeStr(key);
  writeBytes(KEY_H);
  writeStr(h);
  writeBytes(KEY_A);
  const n = a.length;
  if (n < 0x10) slab[pos++] = 0x90 | n;
  else if (n < 0x10000) {
    slab[pos++] = 0xdc;
    slab[pos++] = n >> 8;
    slab[pos++] = n & 0xff;
  } else {
    slab[pos++] = 0xdd;
    view.setUint32(pos, n);
    pos += 4;
  }
  for (let i = 0; i < n; i++) writeScalar(a[i]);
  writeBytes(KEY_HOP);
  writeNum(hop);
}

/** Most bytes of an ask without its id, or -1 when packr must write it. */
function askBound(t: string, key: string, h: string, a: readonly unknown[], hop: number): number {
  const args = argsBound(a);
  if (args < 0 || typeof t !== "string" || typeof key !== "string" || typeof h !== "string") return -1;
  if (typeof hop !== "number") return -1;
  return ASK_FIXED + scalarBound(t) + scalarBound(key) + scalarBound(h) + args + 9;
}

// One map of each per process for packr, refilled for every message that is not plain.
const askMap = { v: 1, k: "ask", id: "", t: "", key: "", h: "", a: [] as readonly unknown[], hop: 0 };
const okMap = { v: 1, k: "ok", r: undefined as unknown };

function packAsk(
  id: string,
  t: string,
  key: string,
  h: string,
  a: readonly unknown[],
  hop: number,
): Uint8Array {
  askMap.id = id;
  askMap.t = t;
  askMap.key = key;
  askMap.h = h;
  askMap.a = a;
  askMap.hop = hop;
  try {
    return packr.pack(askMap);
  } finally {
    askMap.a = [];
  }
}

/** The bytes of `{ v: 1, k: "ask", id, t, key, h, a, hop }` as packr writes them. */
export function packAskMessage(
  id: string,
  t: string,
  key: string,
  h: string,
  a: readonly unknown[],
  hop: number,
): Uint8Array {
  const bound = askBound(t, key, h, a, hop);
  if (bound < 0 || typeof id !== "string") return packAsk(id, t, key, h, a, hop);
  room(bound + scalarBound(id));
  const start = pos;
  writeBytes(ASK_HEAD);
  writeStr(id);
  writeAskTail(t, key, h, a, hop);
  return slab.subarray(start, pos);
}

/**
 * As packAskMessage with the id `prefix + seq.toString(36)` (remote-ask.ts MessageIds), whose
 * digits are written straight into the message: no id string is built. `prefix` is ASCII.
 */
export function packAskSeq(
  prefix: string,
  seq: number,
  t: string,
  key: string,
  h: string,
  a: readonly unknown[],
  hop: number,
): Uint8Array {
  const bound = askBound(t, key, h, a, hop);
  if (bound < 0 || !Number.isSafeInteger(seq) || seq < 0)
    return packAsk(prefix + seq.toString(36), t, key, h, a, hop);
  let digits = 1;
  for (let x = seq; x >= 36; x = Math.floor(x / 36)) digits++;
  const len = prefix.length + digits;
  room(bound + len + 5);
  const start = pos;
  writeBytes(ASK_HEAD);
  const header = strHeader(len);
  writeStrHeader(pos, len);
  let o = pos + header;
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    if (c >= 0x80) {
      pos = start;
      return packAsk(prefix + seq.toString(36), t, key, h, a, hop);
    }
    slab[o++] = c;
  }
  o += digits;
  for (let x = seq, i = 0; i < digits; i++) {
    const d = x % 36;
    slab[--o] = d < 10 ? 48 + d : 87 + d; // '0'..'9', 'a'..'z'
    x = Math.floor(x / 36);
  }
  pos += header + len;
  writeAskTail(t, key, h, a, hop);
  return slab.subarray(start, pos);
}

/** The bytes of `{ v: 1, k: "ok", r }` as packr writes them. */
export function packOkMessage(r: unknown): Uint8Array {
  const bound = scalarBound(r);
  if (bound < 0) {
    okMap.r = r;
    try {
      return packr.pack(okMap);
    } finally {
      okMap.r = undefined;
    }
  }
  room(OK_HEAD.length + bound);
  const start = pos;
  writeBytes(OK_HEAD);
  writeScalar(r);
  return slab.subarray(start, pos);
}

/** The bytes an `ok` reply starts with, before its `r` (batch-codec.ts readOkBatch). */
export const OK_PREFIX: Uint8Array = OK_HEAD;
