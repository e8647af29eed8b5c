// The envelope of batched replica copies (docs/reference/wire.md, "Copy batches"): the `rep`
// messages one primary sends one replica within one turn of the event loop travel as one NATS
// request (`reps`), and the replica answers them in one reply (`repacks`), entry for entry.
// Each entry is a whole `rep` message, decoded and judged alone (its partition, fencing token
// and records), so batching changes how copies travel, never how they are judged. Kept apart
// from wire.ts, which imports the kind for decodeRequest.
//
// Copy version 2: a `rep` carries its copies as `c`, a flat list of COPY_FIELDS values per copy,
// [type, key, version, epoch of the writing tenure (0: none), packed record], so a replica
// judges a copy by its header and keeps the packed record as bytes, unpacked only when it hands
// the copy over or becomes the primary (copy-store.ts). Version 1 (`recs`, every record unpacked
// on arrival) is still decoded, but a node of version 1 is refused at join.
import { isId, isNat, isObj } from "@keyhold/core";
import { Packr } from "msgpackr";
import { isValidEntityKey } from "./entity.js";

/**
 * Version of replica copies (`rep` with `c`) and of their batch envelope (`reps`, `repacks`),
 * part of the protocol compared at join.
 */
export const COPY_BATCH_VERSION = 2;
/** Values per copy in a `rep`'s `c`: type, key, version, epoch, packed record. */
export const COPY_FIELDS = 5;
/** Most copies one `rep` may carry; more is malformed. */
export const MAX_REP_COPIES = 1_000_000;

/** One copy as a replica judges it: the header, and the record still packed. */
export interface CopyEntry {
  readonly t: string;
  readonly key: string;
  readonly ver: number;
  /** The epoch of the tenure that wrote this version (0: none, a pre-fence record). */
  readonly acq: number;
  /** The whole record, packed as record-wire.ts toWireRecord has it. */
  readonly body: Uint8Array;
}

/** A `rep`'s `c` validated (every header field, the body's type only), or undefined. */
export function decodeCopyEntries(x: unknown): CopyEntry[] | undefined {
  if (!Array.isArray(x) || x.length % COPY_FIELDS !== 0 || x.length > COPY_FIELDS * MAX_REP_COPIES)
    return undefined;
  const out: CopyEntry[] = [];
  for (let i = 0; i < x.length; i += COPY_FIELDS) {
    const t: unknown = x[i];
    const key: unknown = x[i + 1];
    const ver: unknown = x[i + 2];
    const acq: unknown = x[i + 3];
    const body: unknown = x[i + 4];
    if (!isId(t) || !isValidEntityKey(key) || !isNat(ver, Number.MAX_SAFE_INTEGER)) return undefined;
    if (!isNat(acq, Number.MAX_SAFE_INTEGER) || !(body instanceof Uint8Array) || body.length === 0)
      return undefined;
    out.push({ t, key, ver, acq, body });
  }
  return out;
}
/** Most copies one batch may carry; more is malformed. */
export const MAX_COPY_ENTRIES = 65_536;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" });

/** `rep` messages to one replica, each an encoded message of its own. */
export interface CopyBatchMessage {
  readonly v: 1;
  readonly k: "reps";
  readonly cv: typeof COPY_BATCH_VERSION;
  readonly m: readonly Uint8Array[];
}

/** Validates the envelope of a copy batch unpacked by wire.ts; the entries are decoded where served. */
export function decodeCopyBatch(m: Record<string, unknown>): CopyBatchMessage | { readonly error: string } {
  if (m.cv !== COPY_BATCH_VERSION) return { error: "unknown copy batch version" };
  if (!Array.isArray(m.m) || m.m.length > MAX_COPY_ENTRIES) return { error: "bad copies" };
  for (const e of m.m as unknown[]) if (!(e instanceof Uint8Array)) return { error: "bad copy entry" };
  return { v: 1, k: "reps", cv: COPY_BATCH_VERSION, m: m.m as Uint8Array[] };
}

export function encodeCopyBatch(msgs: readonly Uint8Array[]): Uint8Array {
  return packr.pack({ v: 1, k: "reps", cv: COPY_BATCH_VERSION, m: msgs });
}

/** The replica's answer to a copy batch: one encoded reply per entry, in the batch's order. */
export function encodeCopyAcks(replies: readonly Uint8Array[]): Uint8Array {
  return packr.pack({ v: 1, k: "repacks", cv: COPY_BATCH_VERSION, r: replies });
}

/** The entries of a `repacks` answering `count` copies, or undefined when it is malformed. */
export function decodeCopyAcks(data: Uint8Array, count: number): Uint8Array[] | undefined {
  let m: unknown;
  try {
    m = packr.unpack(data);
  } catch {
    return undefined;
  }
  if (!isObj(m) || m.v !== 1 || m.k !== "repacks" || m.cv !== COPY_BATCH_VERSION) return undefined;
  if (!Array.isArray(m.r) || m.r.length !== count || !isNat(count, MAX_COPY_ENTRIES)) return undefined;
  for (const e of m.r as unknown[]) if (!(e instanceof Uint8Array)) return undefined;
  return m.r as Uint8Array[];
}
