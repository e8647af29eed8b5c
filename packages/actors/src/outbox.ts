// Records a releasing node holds for the next owner of a partition, until that owner acks
// them or they expire (its taker died). Per entity the newer record wins (isNewer: acquisition
// stamp, then version). Records released while this node was fenced are marked pre-fence:
// someone else may have served the partition since, so they are this node's last resort.
//
// An ack removes only what it acknowledges: the entry as it was served, every page of it, to
// the pull (puller and epoch) that sends the ack. Records put after that serve stay. Without
// this, a late or duplicated ack of an earlier pull arriving after this node had released the
// partition again (having served it meanwhile) dropped the newer records, acknowledged writes
// included, and the next owner started over from older ones (issue 8).
import type { Clock, Logger } from "@keyhold/core";
import { entityId } from "./entity.js";
import { isNewer } from "./slots.js";
import type { EntityRecord } from "./wire.js";

/** Unclaimed outbox entries expire after this many handoffTimeoutMs. */
export const OUTBOX_RETENTION_FACTOR = 6;

interface Entry {
  readonly recs: EntityRecord[];
  /** The pull this entry was served to, every page of it (set by `served`; a put makes a new entry). */
  served?: { readonly to: string; readonly ep: number } | undefined;
  readonly at: number;
  /** Released while this node was fenced (it may have been paused past its lease). */
  readonly preFence: boolean;
}

/** What `take` hands back. */
export interface Held {
  readonly recs: EntityRecord[];
  readonly preFence: boolean;
}

export class Outbox {
  readonly #entries = new Map<number, Entry>();
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #nodeId: string;

  constructor(params: { clock: Clock; logger: Logger; nodeId: string }) {
    this.#clock = params.clock;
    this.#logger = params.logger;
    this.#nodeId = params.nodeId;
  }

  /** Partitions whose records wait for their new owner. */
  get size(): number {
    return this.#entries.size;
  }

  /** The records held for `p`. */
  peek(p: number): readonly EntityRecord[] | undefined {
    return this.#entries.get(p)?.recs;
  }

  /** Whether the records held for `p` are pre-fence. */
  preFence(p: number): boolean {
    return this.#entries.get(p)?.preFence ?? false;
  }

  /** Removes and returns the records held for `p`. */
  take(p: number): Held | undefined {
    const e = this.#entries.get(p);
    this.#entries.delete(p);
    return e && { recs: e.recs, preFence: e.preFence };
  }

  /** Holds `recs` for `p`, merged with what is held already; `preFence` when released while fenced. */
  put(p: number, recs: readonly EntityRecord[], preFence = false): void {
    const prev = this.#entries.get(p);
    const all = prev ? mergeRecords(prev.recs, recs) : [...recs];
    // An empty partition leaves nothing behind to wait for.
    if (all.length > 0)
      this.#entries.set(p, {
        recs: all,
        at: this.#clock.now(),
        preFence: preFence || (prev?.preFence ?? false),
      });
  }

  /**
   * A page (from `cursor`) of the records held for `p` went to the pull of `to` with epoch
   * `ep`. The first page names the pull; a later page to another pull means the entry is no
   * longer known to be wholly with either, and no ack removes it (it expires or moves on).
   */
  served(p: number, to: string, ep: number, cursor: number): void {
    const e = this.#entries.get(p);
    if (!e) return;
    if (cursor === 0) e.served = { to, ep };
    else if (e.served?.to !== to || e.served.ep !== ep) e.served = undefined;
  }

  /**
   * The pull of `from` with epoch `ep` installed the records it was served for `p`: forget
   * them, unless the entry changed since it was served (a put makes a new entry). Returns the
   * records forgotten.
   */
  ack(p: number, from: string, ep: number): readonly EntityRecord[] | undefined {
    const e = this.#entries.get(p);
    if (!e || e.served?.to !== from || e.served.ep !== ep) return undefined;
    this.#entries.delete(p);
    return e.recs;
  }

  /** Drops entries nobody took within `olderThanMs` (their taker died). */
  expire(olderThanMs: number): void {
    const now = this.#clock.now();
    for (const [p, e] of this.#entries) {
      if (now - e.at > olderThanMs) {
        this.#entries.delete(p);
        this.#logger.warn(
          `node ${this.#nodeId}: dropping ${e.recs.length} unclaimed hand-off records of partition ${p}`,
        );
      }
    }
  }
}

/** Per entity, the newer record. */
function mergeRecords(a: readonly EntityRecord[], b: readonly EntityRecord[]): EntityRecord[] {
  const m = new Map<string, EntityRecord>();
  for (const r of [...a, ...b]) {
    const id = entityId(r.t, r.key);
    const cur = m.get(id);
    if (!cur || isNewer(r, cur)) m.set(id, r);
  }
  return [...m.values()];
}
