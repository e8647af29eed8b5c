// The envelope of batched replica copies (docs/reference/wire.md, "Copy batches"): the `rep`
// messages one primary sends one replica within one turn of the event loop travel as one NATS
// request (`reps`), and the replica answers them in one reply (`repacks`), entry for entry.
// Each entry is a whole `rep` message, decoded and judged alone (its partition, fencing token
// and records), so batching changes how copies travel, never how they are judged. Kept apart
// from wire.ts, which imports the kind for decodeRequest.
import { isNat, isObj } from "@keyhold/core";
import { Packr } from "msgpackr";

/** Version of the copy batch envelope (`reps`, `repacks`), part of the protocol compared at join. */
export const COPY_BATCH_VERSION = 1;
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
