// Partition hand-off between old and new owners, pull-based and idempotent.
//
// The new owner of a partition marks it pending (messages for it are buffered) and asks every
// other member it knows of, past and present, for the partition's entity records. A member
// that still owns the partition in its own view answers "wait"; one that is releasing it
// answers once its queued messages are done ("busy" meanwhile); one holding released records
// hands them over only to the node its view names as the owner, and forgets them on ack. The
// new owner keeps the newest record of each entity (epoch, then version: isNewer) and serves
// once everyone answered or handoffTimeoutMs passed (pull.ts), unless the members missed may
// hold what it lacks (await-copy.ts). The ordering makes a duplicate, late or reordered pull,
// reply or ack harmless, and since records reach whoever the holders' views agree on, a chain
// of quick moves (A to B to C) cannot strand them with an interim owner. Per-partition chains
// keep the steps of one partition in order while different partitions move in parallel.
//
// Fencing: before it pulls, the new owner takes a new epoch for the partition (epochs.ts). The
// pull carries it, and every holder that answers first raises its floor for the partition to
// it, so a copy from the previous tenure that arrives later is refused with `stale`. A primary
// that hears `stale` gives the whole partition up (`giveUp`) and takes it back, with a new
// epoch, only if its view still names it the owner once views had time to converge.
//
// The ordering rule (docs/concepts/safety.md, "one acquisition, one tenure"): records of one
// entity order by (acq, ver) (isNewer), acq being the epoch of the tenure that wrote the
// version; a tenure uses its epoch only from `begin`, with every record in and its epoch above
// every epoch among them, until the next release of the partition here; and an acquisition a
// release overtook never begins (acquire). So a tenure that lost its lease never writes again,
// and the partition comes back only through an acquisition that pulled whoever served it since.
import type { Clock, Logger, ShardNode, Transport } from "@keyhold/core";
import { AwaitCopy } from "./await-copy.js";
import type { Background } from "./background.js";
import type { EntityDefinition } from "./entity.js";
import type { EpochSource, EpochStats } from "./epochs.js";
import { FenceWitness } from "./fence-witness.js";
import { Fencing } from "./fencing.js";
import type { HandoffInfo } from "./handoff-log.js";
import { emptyHandoffStats, type HandoffStats } from "./handoff-stats.js";
import type { Lifecycle } from "./lifecycle.js";
import type { Mailbox } from "./mailbox.js";
import type { Outbox } from "./outbox.js";
import { OwnedWatch } from "./owned-watch.js";
import type { PartitionStates } from "./partitions.js";
import { type Peer, PeerTracker } from "./peers.js";
import { Puller } from "./pull.js";
import type { Refill } from "./refill.js";
import { drainPartition } from "./release.js";
import type { Replicator } from "./replication.js";
import { servePull } from "./serve-pull.js";
import type { Slot, SlotTable } from "./slots.js";
import { type EntityRecord, encode } from "./wire.js";

export { emptyHandoffStats, type HandoffStats } from "./handoff-stats.js";

export interface HandoffParams {
  readonly node: ShardNode;
  readonly transport: Transport;
  readonly defs: ReadonlyMap<string, EntityDefinition>;
  readonly cluster: string;
  readonly nodeId: string;
  readonly handoffTimeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly partitions: PartitionStates;
  readonly outbox: Outbox;
  readonly slots: SlotTable;
  readonly lifecycle: Lifecycle;
  readonly mailbox: Mailbox;
  /** Replica copies this node holds and refills (when some entity type is replicated). */
  readonly replicator?: Replicator | undefined;
  readonly refill?: Refill | undefined;
  /** Where each tenure's fencing token comes from. */
  readonly epochs: EpochSource;
  /** Loads stored entities that hold reminders before the partition serves (reminder-index.ts). */
  readonly recoverReminders?: ((p: number) => Promise<void>) | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The node's background queue: pulls run there first (background.ts). */
  readonly background: Background;
  /** Reports how long each completed hand-off took (acquire to ready). */
  readonly onHandoff?: (info: Omit<HandoffInfo, "at">) => void;
}

export class Handoff {
  readonly #p: HandoffParams;
  // Resolved when a partition being pulled is released again, so its pulls stop at once.
  readonly #lost = new Map<number, () => void>();
  // Per partition, how many times this node released it (one entry per partition ever held):
  // an acquisition is superseded once the count moved since it was asked for (see acquire).
  readonly #releases = new Map<number, number>();
  readonly #stats: Omit<HandoffStats, "buffered"> = emptyHandoffStats();
  // Between a `fenced` and an `unfenced` event: what is released now is pre-fence.
  #fenced = false;
  readonly #fencing: Fencing;
  /** Whether a fence was too short for a take-over, per partition (fence-witness.ts). */
  readonly #witness: FenceWitness;
  #peers: PeerTracker | undefined;
  readonly #puller: Puller;
  readonly #awaitCopy: AwaitCopy;
  // Per partition, acquisitions called and not finished; the backstop reads it (owned-watch.ts).
  readonly #acquiring = new Map<number, number>();
  readonly #watch: OwnedWatch;

  constructor(params: HandoffParams) {
    this.#p = params;
    this.#witness = new FenceWitness(params.nodeId, params.node.config.ringSize);
    this.#fencing = new Fencing({
      ...params,
      release: (p) => this.release(p, true),
      acquire: (p) => this.acquire(p, this.#peers?.peers ?? []),
    });
    this.#puller = new Puller({
      ...params,
      stats: this.#stats,
      install: (p, recs, eager) => this.#installAll(p, recs, eager),
    });
    this.#awaitCopy = new AwaitCopy({
      ...params,
      puller: this.#puller,
      peers: () => this.#peers?.peers ?? [],
      stats: this.#stats,
      install: (p, recs, eager) => this.#installAll(p, recs, eager),
    });
    this.#watch = new OwnedWatch({
      ...params,
      acquiring: (p) => this.#acquiring.has(p),
      yielded: (p) => this.#fencing.yielded(p),
      acquire: (p) => this.acquire(p, this.#peers?.peers ?? []),
      stats: this.#stats,
    });
  }

  get stats(): HandoffStats {
    return { ...this.#stats, buffered: this.#p.partitions.buffered };
  }

  /** Fencing tokens taken, and what they cost (epochs.ts); `stats().epochs`. */
  get epochStats(): EpochStats {
    return { ...this.#p.epochs.stats };
  }

  /** Turns this node's ownership events into hand-off steps until the node closes. */
  async follow(): Promise<void> {
    const { node, refill, replicator } = this.#p;
    const peers = new PeerTracker({
      self: node.id,
      clock: this.#p.clock,
      handoffTimeoutMs: this.#p.handoffTimeoutMs,
    });
    this.#peers = peers;
    this.#watch.start();
    let seen = node.ring;
    let first = true;
    for await (const e of node.events()) {
      if (e.type === "members") {
        this.#witness.joined(e.joined);
        peers.update(e, node.departed());
        const [before, ring] = [seen, node.ring];
        seen = ring;
        this.#awaitCopy.viewChanged(before, ring);
        if (replicator && refill) {
          // The replica sets of partitions we serve may have changed: top up those that did (the
          // first replicas of their order moved; a joiner at front 0 or a leaver that gave its
          // partitions up step by step moves none). Every one on the first event.
          this.#p.background.spawn("maintenance", () => replicator.prune());
          const n = Math.max(1, ...[...this.#p.defs.keys()].map((t) => replicator.replicasOf(t)));
          const moved = (p: number) =>
            before.ownersOfPartition(p, n).join() !== ring.ownersOfPartition(p, n).join();
          if (first) refill.refillAll();
          else refill.refillWhere(moved);
        }
        first = false;
      } else if (e.type === "fenced" || e.type === "unfenced") {
        this.#fenced = e.type === "fenced";
        if (e.type === "fenced") this.#witness.fenced();
        else this.#witness.unfenced(e.leaseKept);
      } else if (e.type === "acquired") {
        this.acquire(e.partition, peers.peers);
      } else if (e.type === "released") {
        this.release(e.partition);
      }
    }
    this.#watch.stop();
  }

  /**
   * This node became the owner of `p`; `peers` are the other members that may hold its records.
   *
   * One acquisition is one tenure, and it serves only if it is still the current one when its
   * records are in: a release of `p` on this node after `acquire` was called (a fence, a
   * give-up, a newer view) supersedes it, whatever happens after. Without this, a node paused
   * in the middle of an acquisition that rejoins (new lease, same view) before the stalled step
   * resumes would serve `p` under the epoch it took before the pause, below the epoch an interim
   * owner took meanwhile: its lease check passes (it holds a new lease), so it acknowledges
   * writes that the next hand-off orders below the interim owner's records and drops (issue 8).
   */
  acquire(p: number, peers: readonly Peer[]): void {
    const { partitions, node } = this.#p;
    this.#fencing.acquiring(p);
    this.#acquiring.set(p, (this.#acquiring.get(p) ?? 0) + 1);
    const witnessed = this.#witness.acquiring(p);
    const tenure = this.#releases.get(p) ?? 0;
    const superseded = () =>
      (this.#releases.get(p) ?? 0) !== tenure || node.ring.ownerOfPartition(p) !== this.#p.nodeId;
    void partitions
      .chain(p, async () => {
        // Released before this step ran: the release's own step follows, and a later acquisition.
        if (superseded()) return;
        const started = this.#p.clock.now();
        const st = partitions.pending(p);
        const lost = new Promise<"lost">((r) => this.#lost.set(p, () => r("lost")));
        try {
          // The fencing token first: the pull carries it and fences every holder it reaches.
          let epoch = await this.#fencing.take(p, lost);
          if (epoch === undefined) return; // lost the partition meanwhile: its release follows
          const took = this.#p.clock.now();
          const eager: Slot[] = [];
          // Records this node handed out earlier and nobody took: ours again, but only where
          // nothing newer turns up. Pre-fence ones (released while fenced) may be older than what
          // an interim owner served meanwhile, so they go in last, after the pull, and lose to
          // any record of a later acquisition whatever the versions say (isNewer).
          const mine = this.#p.outbox.take(p);
          let records = 0;
          // Copies this node kept as a replica: the warm standby becomes the primary.
          const copies = this.#p.replicator?.takeCopies(p);
          if (copies && copies.length > 0) records += this.#installAll(p, copies, eager);
          const targets = peers.filter((m) => m.id !== this.#p.nodeId);
          const pulled =
            targets.length > 0
              ? await this.#p.background.add(
                  "handoff",
                  () => this.#puller.pull(p, targets, eager, lost, epoch),
                  {
                    dropped: { n: 0, complete: false, missing: targets },
                    until: lost,
                    partition: true,
                  },
                )
              : { n: 0, complete: true, missing: [] };
          records += pulled.n;
          const pullMs = this.#p.clock.now() - took;
          if (superseded()) {
            // Lost the partition again meanwhile: our records wait for its next owner (or our next
            // tenure), and what the pull installed leaves with the release that follows.
            if (mine) this.#p.outbox.put(p, mine.recs, mine.preFence);
            return;
          }
          // A fence too short for a take-over: nobody can have served it since (fence-witness.ts).
          const incomplete = mine?.preFence === true && !pulled.complete;
          const why = incomplete ? this.#witness.voided(p, witnessed.prior) : "";
          const kept = why === undefined;
          if (why)
            this.#p.logger.info(`node ${this.#p.nodeId}: partition ${p}: its fence proves nothing (${why})`);
          if (kept) {
            this.#stats.preFenceLeaseKept++;
            this.#p.logger.info(
              `node ${this.#p.nodeId}: installing the pre-fence records of partition ${p} without ${pulled.missing.map((m) => m.id).join(", ")}: its fence was too short for a take-over`,
            );
          }
          if (incomplete && !kept && !this.#fencing.unbroken(p)) {
            // Plain entities restart; replicated ones wait for the missing members (await-copy.ts).
            const n = await this.#awaitCopy.settle(p, epoch, mine.recs, pulled, eager, lost, superseded);
            if (n === undefined) return this.#p.outbox.put(p, mine.recs, true); // superseded while waiting
            records += n;
          } else {
            // No pre-fence records, or a proof: waits while a write quorum of its replicas is unreached,
            // unless the epoch bucket shows nobody took it since this node's last tenure (await-copy.ts).
            const free = mine?.preFence || this.#fencing.unbroken(p);
            const q = free ? 0 : await this.#awaitCopy.quorum(p, epoch, pulled, eager, lost, superseded);
            if (q === undefined) return mine && this.#p.outbox.put(p, mine.recs, mine.preFence);
            const n = mine ? this.#installAll(p, mine.recs, eager) : 0;
            records += n + q;
            if (mine?.preFence) this.#stats.preFenceSuperseded += mine.recs.length - n;
          }
          await this.#p.recoverReminders?.(p);
          // Every record is in. A record of an epoch at or above ours (a concurrent acquirer, or a
          // local stamp behind a peer's clock), or a take above ours since (fencing.ts overtaken),
          // means ours no longer fences: take another.
          if (partitions.seen(p) >= epoch || (await this.#fencing.overtaken(p, epoch))) {
            const again = await this.#fencing.take(p, lost);
            if (again === undefined) return;
            epoch = again;
          }
          // The last check before serving: nothing below awaits, so no release can come between it
          // and the first message handled under `epoch`.
          if (superseded()) return;
          partitions.begin(p, epoch);
          this.#witness.begun(witnessed.tenure);
          this.#p.replicator?.fence(p, epoch);
          partitions.set(p, { s: "ready" });
          for (const slot of eager) this.#p.mailbox.wake(slot);
          for (const retry of st.buffer) retry();
          // Back to N copies: the replicas of this partition may be new to it.
          void this.#p.refill?.refill(p);
          this.#p.onHandoff?.({
            partition: p,
            from: targets.map((t) => t.id),
            ms: this.#p.clock.now() - started,
            records,
            takeMs: took - started,
            pullMs,
          });
        } finally {
          this.#lost.delete(p);
        }
      })
      .finally(() => {
        const n = (this.#acquiring.get(p) ?? 1) - 1;
        if (n > 0) this.#acquiring.set(p, n);
        else this.#acquiring.delete(p);
      });
  }

  /** A replica refused a copy of `p` as stale: give the partition up (fencing.ts). */
  giveUp(p: number): void {
    if (this.#fencing.giveUp(p)) this.#stats.partitionsYielded++;
  }

  /** A `stale` answer that only showed a replica's lagging view (host.ts): counted, not acted on. */
  staleFromLaggingView(): void {
    this.#stats.staleFromLaggingView++;
  }

  /** This node stopped owning `p`: drain, passivate, and keep the records for the new owner. */
  release(p: number, preFence = this.#fenced): void {
    const { partitions } = this.#p;
    this.#witness.released(p, this.#p.outbox.preFence(p));
    this.#releases.set(p, (this.#releases.get(p) ?? 0) + 1);
    this.#lost.get(p)?.();
    this.#lost.delete(p);
    let finish!: () => void;
    const done = new Promise<void>((r) => {
      finish = r;
    });
    void partitions.chain(p, async () => {
      try {
        const st = partitions.get(p);
        if (st === undefined) return;
        partitions.set(p, { s: "releasing", done });
        // Buffered messages go back through routing, which now redirects them.
        if (st.s === "pending") for (const retry of st.buffer) retry();
        const recs = await drainPartition(this.#p, p, done);
        this.#p.outbox.put(p, recs, preFence);
        partitions.delete(p);
      } finally {
        finish();
      }
    });
  }

  /** Installs records of partition `p` (pulled, kept or copied); returns how many were newer. */
  install(p: number, recs: readonly EntityRecord[]): number {
    return this.#installAll(p, recs, []);
  }

  #installAll(p: number, recs: readonly EntityRecord[], eager: Slot[]): number {
    let n = 0;
    for (const rec of recs) {
      const def = this.#p.defs.get(rec.t);
      if (!def || this.#p.node.ring.partition(rec.key) !== p) {
        this.#stats.malformed++;
        this.#p.logger.warn(
          `node ${this.#p.nodeId}: dropping hand-off record ${rec.t}/${rec.key}: unknown type or wrong partition`,
        );
        continue;
      }
      this.#p.partitions.see(p, rec.acq ?? 0);
      const slot = this.#p.slots.install(def, rec, p);
      if (slot) {
        n++;
        this.#stats.recordsIn++;
        if (rec.act) eager.push(slot);
      } else this.#stats.recordsStale++;
    }
    return n;
  }

  /**
   * Answers a new owner's pull of `p` (serve-pull.ts). Every pull is counted first, whatever the
   * answer: someone took `p`, so no fence of ours proves our records of it newest (fence-witness.ts).
   * Not while this node is in doubt (its lease lapsed and it has not fenced yet): it cannot tell
   * yet whether its records are still current, so the puller is told to wait and asks again.
   */
  servePull(p: number, from: string, reply: (data: Uint8Array) => void, cursor = 0, ep = 0): Promise<void> {
    this.#witness.pulled(p);
    if (this.#p.node.inDoubt) {
      reply(encode({ v: 1, k: "states", p, status: "wait", recs: [] }));
      return Promise.resolve();
    }
    return servePull(this.#p, p, from, reply, cursor, ep);
  }

  /**
   * The new owner `from` installed what its pull of `p` (epoch `ep`) got: forget it, but keep it as
   * replica copies where this node is still a replica, or a hand-off merges two holders of a write into
   * one until the refill lands and a pull missing the new owner misses it (short-fence.property, seed 14).
   */
  ack(p: number, from: string, ep: number): void {
    const recs = this.#p.outbox.ack(p, from, ep);
    if (!recs) return;
    this.#stats.handedOff++;
    this.#p.replicator?.keepHandedOff(p, recs);
  }
}
