// Topping replicas up: a primary sends every replicated record of a partition it serves to the
// partition's current replicas, so a key is back to N copies after a failover or when a
// replica joined or died. Best effort: a replica that misses it gets the next write or refill.
import type { Clock, Logger } from "@keyhold/core";
import type { Background } from "./background.js";
import { Backoff, sleep } from "./backoff.js";
import type { PartitionStates } from "./partitions.js";
import { LEASE_LAPSED, type Replicator } from "./replication.js";
import type { SlotTable } from "./slots.js";
import { type EntityRecord, pageRecords } from "./wire.js";

/** Resends of a refill page that got no acknowledgement. */
const REFILL_RESENDS = 3;

export interface RefillParams {
  readonly replicator: Replicator;
  readonly partitions: PartitionStates;
  readonly slots: SlotTable;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly nodeId: string;
  /** Installs copies that reached this node after it took the partition over (handoff.ts). */
  readonly install: (p: number, recs: readonly EntityRecord[]) => void;
  /** The node's background queue: the sends wait there behind hand-off pulls (background.ts). */
  readonly background: Background;
  /** Whether this node's current view still gives it `p`: a partition it has given away is not
   * refilled (the copies would only hold up the partition's chain while it moves). */
  readonly owns: (p: number) => boolean;
}

export class Refill {
  readonly #p: RefillParams;

  constructor(params: RefillParams) {
    this.#p = params;
  }

  /** Sends the records of `p` (if this node serves it) to the partition's current replicas. */
  refill(p: number): Promise<void> {
    const { replicator, partitions, slots } = this.#p;
    return partitions.chain(p, async () => {
      if (partitions.state(p) !== "ready" || !this.#p.owns(p)) return;
      // Copies that reached us after we took the partition over: merge them (a higher
      // version wins) instead of keeping a stale second copy of what we serve.
      const late = replicator.takeCopies(p);
      if (late.length > 0) this.#p.install(p, late);
      const recs = slots.slotsOf(p).map((s) => slots.record(s));
      await this.#p.background.add("refill", () => this.#send(p, recs), {
        dropped: undefined,
        partition: true,
      });
    });
  }

  /** Refills every partition this node serves (the replica sets may have changed). */
  refillAll(): void {
    this.refillWhere(() => true);
  }

  /** Refills the partitions this node serves for which `changed(p)` (a join step moved them). */
  refillWhere(changed: (p: number) => boolean): void {
    for (const p of this.#p.partitions.ready()) if (this.#p.owns(p) && changed(p)) void this.refill(p);
  }

  async #send(p: number, recs: readonly EntityRecord[]): Promise<void> {
    const { replicator } = this.#p;
    const byTargets = new Map<string, EntityRecord[]>();
    for (const rec of recs) {
      const n = replicator.replicasOf(rec.t);
      if (n <= 1 || rec.ver === 0) continue;
      for (const t of replicator.targets(p, n)) {
        const list = byTargets.get(t) ?? [];
        list.push(rec);
        byTargets.set(t, list);
      }
    }
    await Promise.all(
      [...byTargets].map(async ([t, list]) => {
        replicator.stats.refills++;
        // In pages, so a big partition never exceeds the server's max_payload. A page that gets
        // no acknowledgement is sent again a few times (the replica may be starting up): a
        // refill that is simply lost would leave keys short of N copies until the next change.
        for (let from: number | undefined = 0; from !== undefined; ) {
          const { page, next } = pageRecords(list, from);
          const msg = replicator.message(p, page);
          let outcome = await replicator.send(t, msg, p);
          const backoff = new Backoff(200, 800);
          // Resending cannot help when the replica judged us stale or our lease lapsed.
          const final = (o: string) =>
            o === "ok" || o === "no-responders" || o === "stale" || o === LEASE_LAPSED;
          for (let i = 0; !final(outcome) && i < REFILL_RESENDS; i++) {
            await sleep(this.#p.clock, backoff.next());
            if (!replicator.targets(p, replicator.replicasOf(page[0]?.t ?? "")).includes(t)) return;
            outcome = await replicator.send(t, msg, p);
          }
          if (outcome !== "ok") {
            replicator.stats.refillsFailed++;
            this.#p.logger.warn(
              `node ${this.#p.nodeId}: refill of partition ${p} to ${t} failed: ${outcome}`,
            );
            return;
          }
          from = next;
        }
      }),
    );
  }
}
