// The passive copies a replica holds (replication.ts judges them, this keeps them). A copy is
// kept as its header (type, key, version, epoch) and its record still packed, as it came
// (copy version 2, copy-wire.ts): a replica reads a record only when it hands the copy to a new
// owner or becomes the primary itself, and a copy held as one byte array is one allocation, not
// the twenty-odd objects of an unpacked record with its remembered asks, which outlive the young
// generation and were most of a replica's garbage-collection work. The body is validated where
// it is unpacked: a malformed one is counted (`copiesMalformed`) and dropped.
import type { CopyEntry } from "./copy-wire.js";
import { entityId } from "./entity.js";
import { recordOfCopy, toWireRecord } from "./record-wire.js";
import { isNewer } from "./slots.js";
import { type EntityRecord, packr } from "./wire.js";

/** A copy as held: mutable, updated in place by the next newer copy of its entity. */
export interface HeldCopy {
  readonly t: string;
  readonly key: string;
  ver: number;
  acq: number;
  body: Uint8Array;
  readonly p: number;
  orphanSince: number | undefined;
  at: number;
}

/** The record as a replica holds it: not live here (built field by field, no spread). */
export function passive(r: EntityRecord): EntityRecord {
  const c: { -readonly [K in keyof EntityRecord]: EntityRecord[K] } = {
    t: r.t,
    key: r.key,
    s: r.s,
    ver: r.ver,
    act: false,
  };
  if (r.acq !== undefined) c.acq = r.acq;
  if (r.recent !== undefined) c.recent = r.recent;
  if (r.rem !== undefined) c.rem = r.rem;
  return c;
}

// The body of an inbound copy is a view into the NATS message (msgpackr unpacks a bin as a
// subarray); kept as it is, one copy would keep the whole socket read buffer alive.
// `new Uint8Array(view)` copies without the species lookup of slice() (a Buffer would make a Buffer).
const own = (b: Uint8Array): Uint8Array => new Uint8Array(b);

export class CopyStore {
  readonly #copies = new Map<string, HeldCopy>();
  readonly #malformed: () => void;

  /** `malformed` hears of each held copy whose body turned out malformed when unpacked. */
  constructor(malformed: () => void) {
    this.#malformed = malformed;
  }

  get size(): number {
    return this.#copies.size;
  }

  get(t: string, key: string): HeldCopy | undefined {
    return this.#copies.get(entityId(t, key));
  }

  /** Keeps `e` (already judged newer than `cur`, the copy held for its entity, if any). */
  keep(cur: HeldCopy | undefined, e: CopyEntry, p: number, at: number): void {
    // Updated in place: copies outlive the young generation, so a new holder per write would be
    // garbage for the old one.
    if (cur) {
      cur.ver = e.ver;
      cur.acq = e.acq;
      cur.body = own(e.body);
      cur.orphanSince = undefined;
      cur.at = at;
      return;
    }
    this.#copies.set(entityId(e.t, e.key), {
      t: e.t,
      key: e.key,
      ver: e.ver,
      acq: e.acq,
      body: own(e.body),
      p,
      orphanSince: undefined,
      at,
    });
  }

  /** Keeps record `r` of partition `p` unless the copy held is the same or newer. */
  keepRecord(r: EntityRecord, p: number, at: number): void {
    const cur = this.get(r.t, r.key);
    if (!cur || isNewer(r, cur)) this.keep(cur, copyOf(r), p, at);
  }

  /** The records of the copies of partition `p` (for a new owner's pull); malformed ones dropped. */
  recordsOf(p: number): EntityRecord[] {
    return this.#records(p, false);
  }

  /** Removes and returns the records of the copies of `p`: this node became its primary. */
  take(p: number): EntityRecord[] {
    return this.#records(p, true);
  }

  #records(p: number, remove: boolean): EntityRecord[] {
    const out: EntityRecord[] = [];
    for (const [id, c] of this.#copies) {
      if (c.p !== p) continue;
      const rec = recordOfCopy(c);
      if (remove || rec === undefined) this.#copies.delete(id);
      if (rec === undefined) this.#malformed();
      else out.push(passive(rec));
    }
    return out;
  }

  /** Drops every copy `drop` says to (it may also update the copy it is shown). */
  dropWhere(drop: (c: HeldCopy) => boolean): void {
    for (const [id, c] of this.#copies) if (drop(c)) this.#copies.delete(id);
  }
}

/** A record as a copy off the wire (copy version 1 and local callers): its body packed. */
export function copyOf(r: EntityRecord): CopyEntry {
  return { t: r.t, key: r.key, ver: r.ver, acq: r.acq ?? 0, body: packr.pack(toWireRecord(r)) };
}
