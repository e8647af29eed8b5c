// Entity records as they are packed (wire.ts has the messages that carry them): `recent`
// travels as `ids`, and every object is built field by field, since an object spread per copy
// cost about as much as packing it (docs/concepts/performance.md).
// wire.ts's own packer: what this packs, wire.ts unpacks (used only inside functions, so the
// import cycle with wire.ts is harmless).
import { COPY_BATCH_VERSION, type CopyEntry } from "./copy-wire.js";
import { decodeRecords, type EntityRecord, packr, type ReplicateMessage } from "./wire.js";

/**
 * A `rep` message of partition `p` (copies to a replica), copy version 2 (copy-wire.ts): per
 * record its header and the record packed on its own, which the replica keeps as bytes.
 */
export function encodeRep(p: number, from: string, recs: readonly EntityRecord[], ep?: number): Uint8Array {
  const c: unknown[] = [];
  for (const r of recs) c.push(r.t, r.key, r.ver, r.acq ?? 0, packr.pack(toWireRecord(r)));
  const m: Record<string, unknown> = { v: 1, k: "rep", cv: COPY_BATCH_VERSION, p, from, c };
  if (ep !== undefined) m.ep = ep;
  return packr.pack(m);
}

/**
 * The record a copy carries, unpacked and validated like any inbound record, or undefined when
 * its body is malformed or does not match its header (type, key, version, epoch).
 */
export function recordOfCopy(c: CopyEntry): EntityRecord | undefined {
  let x: unknown;
  try {
    x = packr.unpack(c.body);
  } catch {
    return undefined;
  }
  const r = decodeRecords([x])?.[0];
  if (r === undefined || r.t !== c.t || r.key !== c.key || r.ver !== c.ver || (r.acq ?? 0) !== c.acq)
    return undefined;
  return r;
}

/**
 * A decoded `rep` of copy version 2. A class, so that every message shares one shape and the
 * `recs` accessor lives on the prototype: reading it unpacks the copies' records (tests, tools;
 * a replica keeps them packed), leaving out any that is malformed.
 */
export class DecodedRep implements ReplicateMessage {
  readonly v = 1;
  readonly k = "rep";
  declare readonly ep?: number;
  constructor(
    readonly p: number,
    readonly from: string,
    readonly copies: readonly CopyEntry[],
    ep: number | undefined,
  ) {
    if (ep !== undefined) (this as { ep?: number }).ep = ep;
  }

  get recs(): EntityRecord[] {
    return this.copies.flatMap((c) => recordOfCopy(c) ?? []);
  }
}

/** A record as it is packed: `recent` travels as `ids`. Built field by field (no spreads). */
export function toWireRecord(r: EntityRecord): object {
  if (r.recent === undefined) return r;
  const w: Record<string, unknown> = { t: r.t, key: r.key, s: r.s, ver: r.ver, act: r.act };
  if (r.acq !== undefined) w.acq = r.acq;
  w.ids = r.recent;
  if (r.rem !== undefined) w.rem = r.rem;
  return w;
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
    const size = packr.pack(toWireRecord(recs[i]!)).length;
    if (page.length > 0 && bytes + size > PAGE_BYTES) break;
    page.push(recs[i]!);
    bytes += size;
  }
  return { page, next: i < recs.length ? i : undefined };
}
