// What a re-acquiring node does with its own pre-fence records (released while it was fenced)
// when its pull of the partition was incomplete and the epoch bucket cannot prove that nobody
// took the partition since its own last tenure (fencing.ts unbroken). See handoff.ts.
//
// Someone may have served the partition meanwhile, and a member that did not answer may hold
// what it acknowledged. For a plain entity that state exists only on its owner, so the entity
// restarts (the documented rule: serving ours would roll back what that owner acknowledged).
// A replicated entity is different: every acknowledged write is held by a write quorum of
// copies, and ours may well be the newest of them (across a NATS split, every node fences, and
// the replicas of a key may all be on the far side: issue 9, the partition test (c)). A restart
// there would lose acknowledged writes for certain. So a partition holding pre-fence records of
// a replicated type waits, unserved (its messages stay buffered; asks past the buffer get a
// retryable MailboxFullError, the rest time out at their own deadline), and pulls again every
// heartbeat from the members that did not answer, until each of them did. Then every record is
// in, replica copies included, and each entity keeps the newest by (epoch, version): a copy
// written by an interim owner beats ours, ours beats older copies.
//
// The wait is per partition, on its own chain; the pulls go through the background queue one
// round at a time, so other partitions move meanwhile. It ends, and the acquisition with it, when
// the partition is released here (a fence, a newer view: one acquisition, one tenure), and the
// records go back to the outbox for the next owner, as pre-fence as they came. A member stops
// being waited for once it has been out of this node's view for PEER_RETENTION_FACTOR ×
// handoffTimeoutMs (as long as the peer tracker asks such a member: peers.ts), taken for
// crashed with its copies; then the newest record among those that answered is served, and the
// plain entities restart. Availability of the partition drops while it waits; safety does not.
//
// An acquirer with no pre-fence records of its own waits too when its pull missed a write quorum
// of the partition's replica set (`quorum`; the seed 19 loss of short-fence.property.test.ts).
// It relies on the replicas it reaches holding every acknowledged write, which holds only if
// what it reached meets every write quorum: a write of a type with N copies is acknowledged by
// majorityReplicas(N) + 1 of them (quorum "all" included). The replica set is taken as the top N
// of the partition among this node and every member it may pull (peers.ts: live, departed and
// recently expired ones, so the previous views' replica sets), cap-free, plus the top N of the
// current view. While `majorityReplicas(N) + 1` of its members did not answer, no answer proves
// the write's copies in, and the partition waits as above, until fewer than that are missing
// (or are forgotten). One member of three lost fails over at once; two lost at once wait.
import { type Clock, type Logger, Ring, type ShardNode } from "@keyhold/core";
import type { Background } from "./background.js";
import { sleep } from "./backoff.js";
import type { EntityDefinition } from "./entity.js";
import type { HandoffStats } from "./handoff.js";
import { PEER_RETENTION_FACTOR, type Peer } from "./peers.js";
import type { Puller, PullResult } from "./pull.js";
import { majorityReplicas } from "./replication.js";
import type { Slot, SlotTable } from "./slots.js";
import type { EntityRecord } from "./wire.js";

export interface AwaitCopyParams {
  readonly node: ShardNode;
  readonly defs: ReadonlyMap<string, EntityDefinition>;
  readonly slots: SlotTable;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly nodeId: string;
  readonly handoffTimeoutMs: number;
  readonly background: Background;
  readonly puller: Puller;
  /** The members that may hold records now (peers.ts), read afresh every round. */
  readonly peers: () => readonly Peer[];
  readonly stats: Pick<HandoffStats, "preFenceDropped" | "preFenceSuperseded" | "copyWaits" | "quorumWaits">;
  /** Installs records of `p`; returns how many were newer (handoff.ts). */
  readonly install: (p: number, recs: readonly EntityRecord[], eager: Slot[]) => number;
}

/** One acquisition of `p` under `epoch`, whose first pull left `missing` unanswered. */
interface PreFenceTurn {
  readonly p: number;
  readonly epoch: number;
  readonly recs: readonly EntityRecord[];
  readonly missing: readonly Peer[];
  readonly eager: Slot[];
  /** Whether these missing members still leave a write quorum of the replica set unreached. */
  readonly short: (missing: readonly Peer[]) => boolean;
  readonly lost: Promise<"lost">;
  /** True once the acquisition no longer is the current one (handoff.ts acquire). */
  readonly superseded: () => boolean;
}

export class AwaitCopy {
  readonly #p: AwaitCopyParams;
  /** The members of the views the latest changes replaced (viewChanged). */
  #recent = new Set<string>();
  /** Members of the view this node's latest fence replaced that no view has shown since. */
  #unseen = new Set<string>();
  /** When the current view began (viewChanged). */
  #since = Number.NEGATIVE_INFINITY;
  /** When this node started: the entries its first views hold were synced, not heard. */
  readonly #born: number;

  constructor(params: AwaitCopyParams) {
    this.#p = params;
    this.#born = params.clock.now();
  }

  /**
   * A membership change from `before` to `after` (handoff.ts follow). The members that may hold
   * copies are those of the view it replaced, and of the views before it where that view says
   * nothing certain: where it lasted less than ttlMs (members lost at once, by a split or a
   * stall, leave the views one sweep apart, up to a heartbeat: a survivor counts them all), and
   * where this node was not in it (fenced, or not joined yet: it knew nothing meanwhile, and a
   * node back from a fence counts the members it knew before). A change from a view that
   * lasted, with this node in both, forgets the older ones: their members were dropped from
   * every view a while ago, and the writes since were copied elsewhere. Members that left
   * gracefully are not kept that way: a leave is announced, not a loss at once with others. A
   * node started less than ttlMs + heartbeatMs ago keeps none (its current view still counts):
   * its table holds entries it synced at the join, and the entry of a member that had left
   * (whose leave it did not hear) ages out then; it had held nothing of theirs either.
   */
  viewChanged(before: Ring, after: Ring): void {
    const { nodeId: self, node } = this.#p;
    const now = this.#p.clock.now();
    const brief = now - this.#since < node.config.ttlMs;
    this.#since = now;
    const keep = brief || !before.members.includes(self) || !after.members.includes(self);
    const left = new Set(node.departed());
    const kept = keep ? [...this.#recent].filter((m) => !left.has(m)) : [];
    const joining = now - this.#born < node.config.ttlMs + node.config.heartbeatMs;
    this.#recent = new Set([...kept, ...(joining ? [] : before.members)]);
    // A fence: the writes of the view it replaced were copied among its members, and this node,
    // fenced, heard nothing of them; a view that lasts after it says nothing of members it never
    // shows (a refill to this node may have failed meanwhile: short-fence property, seed 35). So
    // those members count until a view shows them again or they leave gracefully; the peer
    // tracker's retention bounds the wait for one that never comes back (#wait).
    // Those are the members of the views it still counted then (#recent), not only the last
    // one's: a member dropped from this node's view just before the fence may have taken a copy
    // from a primary that saw it back meanwhile (short-fence property, seed 1715785318). And only
    // a view this node is in shows a member again: the view a fence leaves behind, or one synced
    // at a reconnect, says nothing of what that member holds.
    if (!joining && before.members.includes(self) && !after.members.includes(self))
      for (const m of this.#recent) if (m !== self) this.#unseen.add(m);
    if (after.members.includes(self)) for (const m of after.members) this.#unseen.delete(m);
    for (const m of left) this.#unseen.delete(m);
  }

  #replicated(rec: EntityRecord): boolean {
    return (this.#p.defs.get(rec.t)?.replicas ?? 1) > 1;
  }

  /**
   * Installs or restarts the pre-fence records `recs` of `p` (waiting first when some are of a
   * replicated type; `pulled` is the first pull): the count installed, or undefined when the
   * acquisition was superseded meanwhile (the caller puts the records back in the outbox).
   */
  async settle(
    p: number,
    epoch: number,
    recs: readonly EntityRecord[],
    pulled: { readonly missing: readonly Peer[] },
    eager: Slot[],
    lost: Promise<"lost">,
    superseded: () => boolean,
  ): Promise<number | undefined> {
    const short = this.#short(p);
    const t: PreFenceTurn = { p, epoch, recs, missing: pulled.missing, eager, lost, superseded, short };
    let waited: Waited | "lost" | undefined;
    if (recs.some((r) => this.#replicated(r))) {
      this.#p.stats.copyWaits++;
      this.#p.logger.warn(
        `node ${this.#p.nodeId}: partition ${p} waits, unserved, for ${t.missing.map((m) => m.id).join(", ")}: they may hold newer copies of its replicated entities than this node's pre-fence records`,
      );
      waited = await this.#wait(t, (still) => still.length === 0);
    } else if (short(t.missing)) {
      // Only plain records of ours, but copies of replicated entities may be out of reach too.
      waited = await this.#quorum(t);
    }
    if (waited === "lost") return undefined;
    const complete = waited !== undefined && waited.missing.length === 0 && !waited.forgotten;
    // Every member answered meanwhile: nothing is out of reach, every record takes its chance.
    const restart = complete ? [] : recs.filter((r) => !this.#replicated(r));
    const keep = complete ? recs : recs.filter((r) => this.#replicated(r));
    if (restart.length > 0) {
      // The plain ones: a member that may have served the partition while we were fenced did
      // not answer, its state (restarted from initialState()) is out of reach, and ours is
      // older. Serving ours would roll back what that owner acknowledged; the entities restart
      // instead, and the restart is a record of our epoch (slots.ts restart), so no record older
      // than ours, wherever it waits (another node's pre-fence outbox), comes back later either.
      this.#p.stats.preFenceDropped += restart.length;
      for (const rec of restart) {
        const def = this.#p.defs.get(rec.t);
        if (def && this.#p.node.ring.partition(rec.key) === p) this.#p.slots.restart(def, rec, p, t.epoch);
      }
      this.#p.logger.warn(
        `node ${this.#p.nodeId}: dropping ${restart.length} pre-fence records of partition ${p}: not every member that may have served it meanwhile answered`,
      );
    }
    const n = this.#p.install(p, keep, eager);
    this.#p.stats.preFenceSuperseded += keep.length - n;
    return n;
  }

  /**
   * For an acquirer without pre-fence records whose pull left `pulled.missing` unanswered: waits
   * while they leave a write quorum of the replica set of `p` unreached (see the top). The
   * records the waiting pulls installed, or undefined when the acquisition was superseded.
   */
  async quorum(
    p: number,
    epoch: number,
    pulled: { readonly missing: readonly Peer[] },
    eager: Slot[],
    lost: Promise<"lost">,
    superseded: () => boolean,
  ): Promise<number | undefined> {
    const short = this.#short(p);
    if (!short(pulled.missing)) return 0;
    const t: PreFenceTurn = { p, epoch, recs: [], missing: pulled.missing, eager, lost, superseded, short };
    const waited = await this.#quorum(t);
    return waited === "lost" ? undefined : waited.n;
  }

  async #quorum(t: PreFenceTurn): Promise<Waited | "lost"> {
    this.#p.stats.quorumWaits++;
    this.#p.logger.warn(
      `node ${this.#p.nodeId}: partition ${t.p} waits, unserved, for ${t.missing.map((m) => m.id).join(", ")}: its pull missed a write quorum of its replica set`,
    );
    return this.#wait(t, (still) => !t.short(still));
  }

  /**
   * The test of `quorum` for `p`: whether members still `missing` leave, for some replicated type
   * with N copies, majorityReplicas(N) + 1 members of its replica set unreached. The replica set,
   * fixed at the acquisition: the top N of `p` among this node, its view and the members of the
   * views the latest changes replaced (viewChanged), in plain HRW order and with the caps of
   * joiners in the current view. Not the current view's own top N: where members left one by one
   * (a split seen in two sweeps), it takes in a member the writes of the views before never used.
   */
  #short(p: number): (missing: readonly Peer[]) => boolean {
    const { node, nodeId, defs } = this.#p;
    const ns = new Set([...defs.values()].map((d) => d.replicas ?? 1).filter((n) => n > 1));
    if (ns.size === 0) return () => false;
    // Not the members that left gracefully: they handed off what they owned, copies are copies.
    const left = new Set(node.departed());
    const ids = [
      nodeId,
      ...node.members(),
      ...[...this.#recent, ...this.#unseen].filter((m) => !left.has(m)),
    ];
    const rings = [new Ring(ids, node.config.ringSize), new Ring(ids, node.config.ringSize, node.ring.caps)];
    const sets = [...ns].map((n) => ({
      q: majorityReplicas(n) + 1,
      set: new Set(rings.flatMap((r) => r.ownersOfPartition(p, n))),
    }));
    return (missing) => sets.some(({ q, set }) => missing.filter((m) => set.has(m.id)).length >= q);
  }

  /**
   * Pulls `p` again from the members still missing, a heartbeat apart, until `enough` of them
   * answered: what is still missing, whether some were forgotten by the peer tracker meanwhile,
   * and the records the rounds installed; "lost" when the acquisition was superseded.
   */
  async #wait(t: PreFenceTurn, enough: (still: readonly Peer[]) => boolean): Promise<Waited | "lost"> {
    const { node, clock, background, puller } = this.#p;
    let missing = t.missing;
    let forgotten = false;
    let n = 0;
    // Since when each missing member is out of this node's view, as this wait saw it: the peer
    // tracker forgets a member only at a membership change, and a stable view brings none.
    const absent = new Map<string, number>();
    const retention = PEER_RETENTION_FACTOR * this.#p.handoffTimeoutMs;
    for (;;) {
      const peers = new Map(this.#p.peers().map((m) => [m.id, m]));
      const live = new Set(node.members());
      const now = clock.now();
      const kept = (id: string) => {
        if (live.has(id)) absent.delete(id);
        else if (!absent.has(id)) absent.set(id, now);
        return peers.has(id) && now - (absent.get(id) ?? now) <= retention;
      };
      const still = missing.filter((m) => kept(m.id)).map((m) => peers.get(m.id)!);
      if (still.length < missing.length) forgotten = true;
      if (enough(still)) return { missing: still, forgotten, n };
      if (t.superseded() || node.closed) return "lost";
      const tick = await Promise.race([
        sleep(clock, node.config.heartbeatMs).then(() => "tick" as const),
        t.lost,
      ]);
      if (tick === "lost" || t.superseded()) return "lost";
      const round: PullResult = await background.add(
        "handoff",
        () => puller.pull(t.p, still, t.eager, t.lost, t.epoch, true),
        { dropped: { n: 0, complete: false, missing: still }, until: t.lost, partition: true },
      );
      if (t.superseded()) return "lost";
      n += round.n;
      missing = round.missing;
    }
  }
}

/** How a wait ended: who is still missing, whether some were forgotten, records installed. */
interface Waited {
  readonly missing: readonly Peer[];
  readonly forgotten: boolean;
  readonly n: number;
}
