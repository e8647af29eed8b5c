// Partition hand-off between old and new owners, pull-based and idempotent.
//
// The new owner of a partition marks it pending (messages for it are buffered) and asks every
// other member it knows of, past and present, for the partition's entity records. A member
// that still owns the partition in its own view answers "wait"; one that is releasing it
// answers once its queued messages are done; one holding released records hands them over
// only to the node its view names as the owner, and forgets them on ack. The new owner keeps
// the highest version of each entity and serves once everyone answered or handoffTimeoutMs
// passed. Versions make a duplicate, late or reordered pull, reply or ack harmless, and since
// records reach whoever the holders' views agree on, a chain of quick moves (A to B to C)
// cannot strand them with an interim owner. Per-partition chains keep the steps of one
// partition in order while different partitions move in parallel.
import { type Clock, type Logger, RequestFailedError, type ShardNode, type Transport } from "@keyhold/core";
import type { EntityDefinition } from "./entity.js";
import type { EntityHost, Slot } from "./entity-host.js";
import type { Replicator } from "./replication.js";
import { decodeReply, type EntityRecord, encode, isError, nodeSubject, pageRecords } from "./wire.js";

/** A member that may hold a partition's records; an impatient one is given up on after one timeout. */
export interface Peer {
  readonly id: string;
  readonly patient: boolean;
}

type PartState =
  | { readonly s: "pending"; readonly buffer: (() => void)[] }
  | { readonly s: "ready" }
  | { readonly s: "releasing"; readonly done: Promise<void> };

interface Outbox {
  readonly recs: EntityRecord[];
  readonly at: number;
}

export interface HandoffStats {
  /** Partitions whose records were pulled from a previous owner. */
  pulled: number;
  /** Entity records installed from hand-offs. */
  recordsIn: number;
  /** Records skipped because this node held the same or a newer version. */
  recordsStale: number;
  /** Partitions whose records were taken from this node's outbox by a new owner. */
  handedOff: number;
  /** Pulls given up: the previous owner was gone or did not answer in handoffTimeoutMs. */
  pullsAbandoned: number;
  /** Messages buffered while a partition was pending. */
  buffered: number;
  malformed: number;
}

export function emptyHandoffStats(): HandoffStats {
  return {
    pulled: 0,
    recordsIn: 0,
    recordsStale: 0,
    handedOff: 0,
    pullsAbandoned: 0,
    buffered: 0,
    malformed: 0,
  };
}

export interface HandoffParams {
  readonly node: ShardNode;
  readonly transport: Transport;
  readonly host: EntityHost;
  readonly defs: ReadonlyMap<string, EntityDefinition>;
  readonly cluster: string;
  readonly nodeId: string;
  readonly handoffTimeoutMs: number;
  readonly attemptTimeoutMs: number;
  /** Most messages buffered per pending partition. */
  readonly bufferLimit: number;
  /** Replica copies this node holds (when some entity type is replicated). */
  readonly replicator?: Replicator | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Reports how long each completed hand-off took (acquire to ready). */
  readonly onHandoff?: (info: {
    partition: number;
    from: readonly string[];
    ms: number;
    records: number;
  }) => void;
}

export class PartitionTable {
  readonly #p: HandoffParams;
  readonly #parts = new Map<number, PartState>();
  readonly #outbox = new Map<number, Outbox>();
  readonly #chains = new Map<number, Promise<void>>();
  // Resolved when a partition being pulled is released again, so its pulls stop at once.
  readonly #lost = new Map<number, () => void>();
  readonly stats: HandoffStats = emptyHandoffStats();

  constructor(params: HandoffParams) {
    this.#p = params;
  }

  /** "ready", "pending", "releasing", or undefined when this node does not hold the partition. */
  state(p: number): PartState["s"] | undefined {
    return this.#parts.get(p)?.s;
  }

  /** Partitions whose records wait in the outbox for their new owner. */
  get outboxSize(): number {
    return this.#outbox.size;
  }

  /**
   * Buffers a message for a partition this node owns but does not serve yet (pending, or its
   * acquired event not yet processed). False when the buffer is full or the partition is not ours.
   */
  buffer(p: number, retry: () => void): boolean {
    let st = this.#parts.get(p);
    if (st === undefined) {
      st = { s: "pending", buffer: [] };
      this.#parts.set(p, st);
    }
    if (st.s !== "pending" || st.buffer.length >= this.#p.bufferLimit) return false;
    st.buffer.push(retry);
    this.stats.buffered++;
    return true;
  }

  #chain(p: number, step: () => Promise<void>): Promise<void> {
    const next = (this.#chains.get(p) ?? Promise.resolve()).then(step).catch((err: unknown) => {
      this.#p.logger.error(`node ${this.#p.nodeId}: hand-off step for partition ${p} failed: ${String(err)}`);
    });
    this.#chains.set(p, next);
    void next.then(() => {
      if (this.#chains.get(p) === next) this.#chains.delete(p);
    });
    return next;
  }

  /** Resolves when every queued hand-off step has run. */
  async settled(): Promise<void> {
    while (this.#chains.size > 0) await Promise.all([...this.#chains.values()]);
  }

  /** This node became the owner of `p`; `peers` are the other members that may hold its records. */
  acquire(p: number, peers: readonly Peer[]): void {
    void this.#chain(p, async () => {
      const started = this.#p.clock.now();
      let st = this.#parts.get(p);
      if (st?.s !== "pending") {
        st = { s: "pending", buffer: [] };
        this.#parts.set(p, st);
      }
      const eager: Slot[] = [];
      // Records this node handed out earlier and nobody took: ours again.
      const mine = this.#outbox.get(p);
      let records = 0;
      if (mine) {
        this.#outbox.delete(p);
        records += this.#installAll(p, mine.recs, eager);
      }
      // Copies this node kept as a replica: the warm standby becomes the primary.
      const copies = this.#p.replicator?.takeCopies(p);
      if (copies && copies.length > 0) records += this.#installAll(p, copies, eager);
      const targets = peers.filter((m) => m.id !== this.#p.nodeId);
      const lost = new Promise<"lost">((r) => this.#lost.set(p, () => r("lost")));
      if (targets.length > 0) records += await this.#pull(p, targets, eager, lost);
      this.#lost.delete(p);
      this.#parts.set(p, { s: "ready" });
      for (const slot of eager) this.#p.host.activate(slot);
      for (const retry of st.buffer) retry();
      // Back to N copies: the replicas of this partition may be new to it.
      if (this.#p.replicator) void this.refill(p);
      this.#p.onHandoff?.({
        partition: p,
        from: targets.map((t) => t.id),
        ms: this.#p.clock.now() - started,
        records,
      });
    });
  }

  /** This node stopped owning `p`: drain, passivate, and keep the records for the new owner. */
  release(p: number): void {
    this.#lost.get(p)?.();
    this.#lost.delete(p);
    let finish!: () => void;
    const done = new Promise<void>((r) => {
      finish = r;
    });
    void this.#chain(p, async () => {
      try {
        const st = this.#parts.get(p);
        if (st === undefined) return;
        this.#parts.set(p, { s: "releasing", done });
        // Buffered messages go back through routing, which now redirects them.
        if (st.s === "pending") for (const retry of st.buffer) retry();
        const host = this.#p.host;
        const slots = host.slotsOf(p);
        // Queued messages finish first; a handler that never returns must not hold the
        // partition hostage, so the wait is bounded and what state there is moves on.
        const idle = Promise.all(slots.map((s) => host.whenIdle(s)));
        let timer: unknown;
        const drained = await Promise.race([
          idle.then(() => true),
          new Promise<boolean>((r) => {
            timer = this.#p.clock.setTimeout(() => r(false), this.#p.handoffTimeoutMs);
          }),
        ]);
        this.#p.clock.clearTimeout(timer);
        if (!drained) {
          this.#p.logger.warn(
            `node ${this.#p.nodeId}: handlers of partition ${p} still running after ${this.#p.handoffTimeoutMs} ms; handing off their current state`,
          );
        }
        const recs: EntityRecord[] = [];
        for (const s of slots) {
          const wasActive = s.instance !== undefined;
          await host.passivate(s);
          recs.push({ ...host.record(s), act: wasActive });
          host.drop(s);
        }
        const prev = this.#outbox.get(p);
        const all = prev ? mergeRecords(prev.recs, recs) : recs;
        // An empty partition leaves nothing behind to wait for.
        if (all.length > 0) this.#outbox.set(p, { recs: all, at: this.#p.clock.now() });
        this.#parts.delete(p);
      } finally {
        finish();
      }
    });
  }

  #installAll(p: number, recs: readonly EntityRecord[], eager: Slot[]): number {
    let n = 0;
    for (const rec of recs) {
      const def = this.#p.defs.get(rec.t);
      if (!def || this.#p.node.ring.partition(rec.key) !== p) {
        this.stats.malformed++;
        this.#p.logger.warn(
          `node ${this.#p.nodeId}: dropping hand-off record ${rec.t}/${rec.key}: unknown type or wrong partition`,
        );
        continue;
      }
      const slot = this.#p.host.install(def, rec, p);
      if (slot) {
        n++;
        this.stats.recordsIn++;
        if (rec.act) eager.push(slot);
      } else this.stats.recordsStale++;
    }
    return n;
  }

  async #pull(p: number, targets: readonly Peer[], eager: Slot[], lost: Promise<"lost">): Promise<number> {
    const { clock, node } = this.#p;
    const deadline = clock.now() + this.#p.handoffTimeoutMs;
    let installed = 0;
    const problems: string[] = [];
    // Each holder is polled on its own, so a slow or vanished one never delays the others.
    const results = await Promise.all(
      targets.map((t) =>
        this.#pullFrom(p, t, deadline, eager, lost).then(
          (n) => {
            installed += n;
            return true;
          },
          (problem: string) => {
            problems.push(problem);
            return false;
          },
        ),
      ),
    );
    if (results.includes(false) && node.ring.ownerOfPartition(p) === this.#p.nodeId) {
      this.stats.pullsAbandoned++;
      this.#p.logger.warn(
        `node ${this.#p.nodeId}: hand-off of partition ${p} incomplete after ${this.#p.handoffTimeoutMs} ms (${problems.join("; ")}); serving with the records this node has`,
      );
    }
    return installed;
  }

  /** Polls one holder until it hands over (resolves with the count installed) or rejects with why not. */
  async #pullFrom(
    p: number,
    peer: Peer,
    deadline: number,
    eager: Slot[],
    lost: Promise<"lost">,
  ): Promise<number> {
    const { clock, transport, node } = this.#p;
    const target = peer.id;
    const subject = nodeSubject(this.#p.cluster, target);
    let cursor = 0;
    let installed = 0;
    let received = 0;
    let delay = 5;
    let problem = "no answer";
    while (clock.now() < deadline) {
      const req = encode({ v: 1, k: "pull", p, from: this.#p.nodeId, ...(cursor > 0 ? { c: cursor } : {}) });
      // Lost the partition meanwhile: stop asking. What arrived so far moves on with our
      // release; the rest stays with its holder for the next owner.
      if (node.ring.ownerOfPartition(p) !== this.#p.nodeId) return installed;
      try {
        // Short attempts: a holder that vanished mid-request must not hold the partition long.
        const attempt = Math.min(
          this.#p.attemptTimeoutMs,
          Math.max(100, Math.floor(this.#p.handoffTimeoutMs / 4)),
        );
        const timeout = Math.max(1, Math.min(attempt, deadline - clock.now()));
        const answer = await Promise.race([transport.request(subject, req, { timeout }), lost]);
        if (answer === "lost") return installed;
        const reply = decodeReply(answer);
        if (isError(reply) || reply.k !== "states" || reply.p !== p) {
          this.stats.malformed++;
          problem = `malformed reply from ${target}`;
        } else if (reply.status === "ok") {
          installed += this.#installAll(p, reply.recs, eager);
          received += reply.recs.length;
          if (reply.next !== undefined) {
            cursor = reply.next; // more pages
            continue;
          }
          // Ack whatever was received, installed or not (we may hold the same versions as
          // replica copies already): the holder waits for the ack to let go of its outbox.
          if (received > 0) {
            transport.publish(subject, encode({ v: 1, k: "ack", p, from: this.#p.nodeId }));
            this.stats.pulled++;
          }
          return installed;
        } else problem = `${target} still owns or drains it`;
      } catch (err) {
        // No responders: that member is gone (crashed or closed), nothing to pull there.
        if (err instanceof RequestFailedError && err.reason === "no-responders") return 0;
        problem = `${target}: ${err instanceof RequestFailedError ? err.reason : String(err)}`;
        // A member whose lease expired and that does not answer is taken for dead.
        if (!peer.patient && err instanceof RequestFailedError && err.reason === "timeout") return installed;
      }
      await new Promise<void>((r) =>
        clock.setTimeout(r, Math.max(1, Math.min(delay, deadline - clock.now()))),
      );
      delay = Math.min(delay * 2, 200);
    }
    throw problem;
  }

  /**
   * Answers a new owner's pull: "wait" while this node still owns `p` or is draining it, else
   * the records it holds for `p` — only to the node its own view names as the owner.
   */
  async servePull(p: number, from: string, reply: (data: Uint8Array) => void, cursor = 0): Promise<void> {
    const wait = () => reply(encode({ v: 1, k: "states", p, status: "wait", recs: [] }));
    const self = this.#p.nodeId;
    const ring = () => this.#p.node.ring;
    const st = this.#parts.get(p);
    if (st?.s === "releasing") await st.done;
    else if (st !== undefined) return wait();
    if (this.#parts.has(p) || ring().ownerOfPartition(p) === self) return wait();
    const ob = this.#outbox.get(p);
    // Replica copies are copies, not moves: anyone may read them (read repair).
    const copies = this.#p.replicator?.copiesOf(p) ?? [];
    // Views converge within a heartbeat; until ours names the asker, it may not be the owner.
    if (ob && ob.recs.length > 0 && ring().ownerOfPartition(p) !== from) return wait();
    const all = ob ? [...ob.recs, ...copies] : copies;
    const { page, next } = pageRecords(all, cursor);
    reply(encode({ v: 1, k: "states", p, status: "ok", recs: page, next }));
  }

  /** Sends the records of `p` (if this node serves it) to the partition's current replicas. */
  refill(p: number): Promise<void> {
    const replicator = this.#p.replicator;
    if (!replicator) return Promise.resolve();
    return this.#chain(p, async () => {
      if (this.#parts.get(p)?.s !== "ready") return;
      // Copies that reached us after we took the partition over: merge them (a higher
      // version wins) instead of keeping a stale second copy of what we serve.
      const late = replicator.takeCopies(p);
      if (late.length > 0) this.#installAll(p, late, []);
      const recs = this.#p.host.slotsOf(p).map((s) => this.#p.host.record(s));
      await replicator.refill(p, recs);
    });
  }

  /** Partitions this node serves. */
  readyPartitions(): number[] {
    const out: number[] = [];
    for (const [p, st] of this.#parts) if (st.s === "ready") out.push(p);
    return out;
  }

  /** The new owner installed `p`'s records: forget them. */
  ack(p: number): void {
    if (this.#outbox.delete(p)) this.stats.handedOff++;
  }

  /** Drops outbox entries nobody took within `olderThanMs` (their taker died). */
  expireOutbox(olderThanMs: number): void {
    const now = this.#p.clock.now();
    for (const [p, ob] of this.#outbox) {
      if (now - ob.at > olderThanMs) {
        this.#outbox.delete(p);
        this.#p.logger.warn(
          `node ${this.#p.nodeId}: dropping ${ob.recs.length} unclaimed hand-off records of partition ${p}`,
        );
      }
    }
  }

  /** Partitions this node holds in any state (owned, pending or releasing). */
  get heldCount(): number {
    return this.#parts.size;
  }
}

/** Per entity, the record with the higher version. */
function mergeRecords(a: readonly EntityRecord[], b: readonly EntityRecord[]): EntityRecord[] {
  const m = new Map<string, EntityRecord>();
  for (const r of [...a, ...b]) {
    const id = `${r.t}\u0000${r.key}`;
    const cur = m.get(id);
    if (!cur || r.ver > cur.ver) m.set(id, r);
  }
  return [...m.values()];
}
