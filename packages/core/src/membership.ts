// Lease membership over a transport: heartbeats out, heartbeats/leaves/syncs in, the live member
// set recomputed whenever a lease is added, expires or is given up. No partitions (ShardNode).
import { Admission, sameList } from "./admission.js";
import { WakeTimer } from "./clock.js";
import { ConfigMismatchError, DuplicateNodeIdError } from "./errors.js";
import { doubtfulPeers, Rejoin } from "./fencing.js";
import { Heartbeats } from "./heartbeats.js";
import { LeaseTable } from "./lease.js";
import { OnceWarner } from "./logger.js";
import {
  emptyLeaseStats,
  emptyStats,
  type LeaseStats,
  type MembershipParams,
  type MembershipStats,
} from "./membership-types.js";
import { diffConfig } from "./options.js";
import type { OwnLease } from "./own-lease.js";
import { requestSync, type SyncContext, serveSync } from "./sync.js";
import { expiredPeers, holdUnconfirmed, type TakeoverCheck, takeoverCheck } from "./takeover.js";
import type { TransportSubscription } from "./transport.js";
import {
  decode,
  encode,
  isMalformed,
  MAX_SMALL_MESSAGE_BYTES,
  type MembershipMessage,
  subjects,
} from "./wire.js";

export type { LeaseStats, MembershipParams, MembershipStats } from "./membership-types.js";

export class Membership {
  readonly #p: MembershipParams;
  readonly #subjects: ReturnType<typeof subjects>;
  readonly #table: LeaseTable;
  readonly #subs: TransportSubscription[] = [];
  readonly #warn: OnceWarner;
  readonly #wake: WakeTimer;
  #members: readonly string[] = [];
  /** Expired peers kept as members until this node can tell their silence from its own. */
  #held: ReadonlySet<string> = new Set();
  /** Set from the lapse of our lease until we may take partitions back (fencing.ts). */
  #rejoin: Rejoin | undefined;
  /** Sends our heartbeats; holds our own lease (own-lease.ts), renewed after a lapse only by rejoining. */
  readonly #hb: Heartbeats;
  readonly #lease: OwnLease;
  /** When a lease table from a peer was last merged. */
  #syncedAt = Number.NEGATIVE_INFINITY;
  #fenced = false;
  #leaseKept = false; // at the last unfence, whether no peer can have dropped us (own-lease.ts)
  #started = false;
  #closed = false;
  #left = false;
  /** jetstream mode: confirms a silent peer's silence with the stream leader before a drop. */
  #takeover: TakeoverCheck | undefined;
  #startMismatch: ConfigMismatchError | undefined;
  #offStatus: (() => void) | undefined;
  readonly stats: MembershipStats = emptyStats();
  readonly leaseStats: LeaseStats = emptyLeaseStats();
  readonly #syncContext: SyncContext;
  /** Admission fronts of members joining step by step, ours included (admission.ts). */
  readonly admission: Admission;

  constructor(params: MembershipParams) {
    this.#p = params;
    this.#warn = new OnceWarner(params.logger, `node ${params.id}: `);
    this.#wake = new WakeTimer(params.clock, () => this.#recompute());
    this.#subjects = subjects(params.cluster);
    this.#table = new LeaseTable(params.config.ttlMs, params.config.skewMs, params.tombstoneMs);
    this.#hb = new Heartbeats(
      params,
      this.#subjects.heartbeat,
      this.stats,
      this.leaseStats,
      () => this.#beat(),
      (at) => this.#renew(at),
    );
    const changed = () => this.#started && this.#recompute();
    this.#takeover = params.stream && takeoverCheck(params, params.stream, this, this.#table, changed);
    this.#lease = this.#hb.lease;
    this.admission = new Admission(params.config.ringSize);
    this.#syncContext = {
      ...params,
      subject: this.#subjects.sync,
      table: this.#table,
      stats: this.stats,
      admission: this.admission,
      warnOnce: (peer, message) => this.#warn.warn(peer, message),
    };
  }

  get members(): readonly string[] {
    return this.#members;
  }

  /** When the newest heartbeat of `id` in the lease table was emitted (for admin reports). */
  emittedAt(id: string): number | undefined {
    return this.#table.emittedAt(id);
  }

  get fenced(): boolean {
    return this.#fenced;
  }

  /** At the last unfence: no peer can have dropped this node across the fence (`unfenced`). */
  get leaseKept(): boolean {
    return this.#leaseKept;
  }

  /** Members that left gracefully and are still remembered (tombstoned), sorted. */
  departed(): string[] {
    // Held peers stay: only #recompute decides when they go.
    const { clock, id } = this.#p;
    return this.#table.departed(clock.now(), this.#held, clock.monoNow(), [...this.#members, id]);
  }

  /** Subscribes, syncs the lease table and checks its config, then heartbeats until echoed. */
  async start(timeoutMs: number): Promise<void> {
    const t = this.#p.transport;
    // Only the heartbeat subject of our lease mode (users' permissions name it); a node of the
    // other mode is refused by the config in the sync reply it gets at start.
    const { heartbeat, memberHeartbeats, leave } = this.#subjects;
    const hb = this.#p.config.leases === "jetstream" ? memberHeartbeats : heartbeat;
    for (const s of [hb, leave]) this.#subs.push(t.subscribe(s, (m) => this.#onMessage(m.data)));
    this.#offStatus = t.onStatus((s) => {
      if (s === "reconnected" && !this.#closed) {
        this.#p.logger.info(`node ${this.#p.id}: NATS reconnected, resyncing membership`);
        if (!this.#p.observer && !this.#left) this.#beat();
        void this.#sync(1000).catch(() => {});
      }
    });
    await t.flush();

    try {
      await this.#sync(Math.min(timeoutMs, 2000), true);
    } catch (err) {
      if (err instanceof ConfigMismatchError) throw err;
      // Nobody answered: we are the first, or peers are slow; heartbeats will tell.
    }
    if (this.#startMismatch) throw this.#startMismatch;
    // Before our first heartbeat, a live lease under our id belongs to someone else.
    if (!this.#p.observer && this.#table.isLive(this.#p.id, this.#p.clock.monoNow())) {
      throw new DuplicateNodeIdError(this.#p.id, this.#p.config.ttlMs);
    }
    // Others are live: join step by step, owning nothing at first (join-steps.ts).
    const peers = this.#table.live(this.#p.clock.monoNow()).filter((id) => id !== this.#p.id);
    if (!this.#p.observer && (this.#p.joinStep ?? 0) > 0 && peers.length > 0) this.setFront(0);
    // Serve syncs only now: subscribed earlier, our own subscription would count as a
    // responder and turn "nobody here yet" into a wait for the sync timeout.
    this.#subs.push(
      t.subscribe(this.#subjects.sync, (m) => {
        if (m.reply) serveSync(this.#syncContext, this.#held, m.data, m.reply);
      }),
    );

    if (!this.#p.observer) {
      await this.#hb.firstBeat(timeoutMs);
      if (this.#startMismatch) throw this.#startMismatch;
    }
    this.#started = true;
    this.#recompute();
  }

  /**
   * Leaves the ring but keeps watching it: stops heartbeating, announces the leave (peers drop
   * this member at once), and from then on tracks the others like an observer. Used by layers
   * that must keep a live view while they hand their partitions off.
   */
  async leave(): Promise<void> {
    if (this.#left || this.#closed) return;
    this.#left = true;
    const p = this.#p;
    this.#hb.stop();
    if (p.observer || !this.#started) return;
    const at = p.clock.now();
    this.#table.leave(p.id, at, at);
    p.transport.publish(this.#subjects.leave, encode({ v: 1, k: "leave", id: p.id, at }));
    await p.transport.flush().catch(() => {});
    this.#recompute();
  }

  /** Leaves (if not yet) and stops all timers and subscriptions. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.leave();
    this.#closed = true;
    this.#hb.stop();
    this.#wake.stop();
    this.#offStatus?.();
    for (const s of this.#subs) s.unsubscribe();
    this.#subs.length = 0;
  }

  /** True once leave() or close() was called. */
  get left(): boolean {
    return this.#left;
  }

  /**
   * Ms left of this node's own lease, read from the monotonic clock now (never a cached flag):
   * 0 for an observer, after leave(), while fenced, and once the lease lapsed. Only while it is
   * above 0 may this node act as an owner (see lease.ts for the rule).
   */
  leaseRemainingMs(): number {
    if (this.#p.observer || this.#left || this.#closed || this.#fenced || this.#rejoin !== undefined)
      return 0;
    const left = this.#lease.until - this.#p.clock.monoNow();
    return Math.max(left, 0);
  }

  /**
   * True while this node is a member that has not fenced, but whose lease lapsed (a pause, a
   * stalled event loop, a cut link not yet noticed by a timer): it cannot tell what it lost.
   */
  get inDoubt(): boolean {
    return (
      this.#started &&
      !this.#p.observer &&
      !this.#left &&
      !this.#closed &&
      !this.#fenced &&
      this.leaseRemainingMs() === 0
    );
  }

  /** Moves our admission front (admission.ts) and reports it; the next heartbeat carries it. */
  setFront(front: number | undefined): void {
    if (!this.admission.setOwn(front)) return;
    this.#hb.front = this.admission.own;
    if (this.#started) this.#recompute();
  }

  /** Publishes one heartbeat now and schedules the next (heartbeats.ts). */
  #beat(): void {
    if (this.#closed || this.#left) return;
    if (this.#started) this.#p.beforeBeat?.();
    this.#hb.beat();
    // A beat is also a safe moment to re-check expiry, should a timer have been lost.
    if (this.#started) this.#recompute();
  }

  async #sync(timeout: number, atStart = false): Promise<void> {
    const knowsLivePeer = await requestSync(this.#syncContext, timeout, atStart);
    if (knowsLivePeer === undefined) return;
    if (knowsLivePeer) this.#syncedAt = this.#p.clock.monoNow();
    if (this.#started) this.#recompute();
  }

  #onMessage(data: Uint8Array): void {
    if (this.#closed) return;
    const p = this.#p;
    const msg: ReturnType<typeof decode> = decode(data, MAX_SMALL_MESSAGE_BYTES);
    if (isMalformed(msg)) {
      this.stats.malformed++;
      p.logger.debug(`node ${p.id}: dropped a malformed membership message: ${msg.error}`);
      return;
    }
    this.#apply(msg);
  }

  #apply(msg: MembershipMessage): void {
    const p = this.#p;
    const now = p.clock.now();
    if (msg.k === "hb") {
      const diff = diffConfig(p.config, msg.cfg);
      if (diff.length > 0) {
        this.stats.configMismatch++;
        const err = new ConfigMismatchError(msg.id, diff);
        if (!this.#started && !this.#startMismatch) this.#startMismatch = err;
        this.#warn.warn(msg.id, `ignoring heartbeats of ${msg.id}: ${err.message}`);
        return;
      }
      const mono = p.clock.monoNow();
      const verdict = this.#table.observe(msg.id, msg.at, now, mono);
      if (verdict === "future") this.stats.rejectedFuture++;
      else if (verdict !== "accepted") this.stats.rejectedStale++;
      else {
        this.stats.heartbeatsAccepted++;
        const front = this.admission.observe(msg.id, msg.adm, p.id);
        if (msg.id === p.id) {
          // In jetstream mode only the stream's acknowledgement renews (#renew).
          if (!p.stream) this.#lease.echoed(msg.at, this.#mayExtend(mono), mono);
          this.#hb.echoed();
        }
        if (!this.#started) return;
        // Our own echo is what settles held peers (and ends fencing); a held peer's heartbeat
        // means it was alive after all.
        if (front || !this.#members.includes(msg.id) || this.#held.has(msg.id)) this.#recompute();
        else if (msg.id === p.id && (this.#fenced || this.#held.size > 0)) this.#recompute();
        else this.#scheduleExpiry();
      }
    } else if (msg.k === "leave") {
      this.stats.leavesSeen++;
      // Our own leave ends our lease here too (leaseRemainingMs checks #left).
      if (msg.id === p.id) return;
      if (this.#table.leave(msg.id, msg.at, now) && this.#started) this.#recompute();
    } else {
      // sync requests and replies do not arrive on the heartbeat or leave subjects.
      this.stats.malformed++;
    }
  }

  #mayExtend(mono: number): boolean {
    return !this.#started || (this.#rejoin === undefined && this.#lease.live(mono));
  }

  /** jetstream mode: the stream acknowledged our heartbeat emitted at `at` (a lapsed lease waits). */
  #renew(at: number): void {
    if (this.#closed) return;
    const mono = this.#p.clock.monoNow();
    this.#lease.echoed(at, this.#mayExtend(mono), mono);
    if (!this.#started) return;
    if (this.#fenced || this.#held.size > 0) this.#recompute();
    else this.#scheduleExpiry();
  }

  /** Sweeps, recomputes the live set and the fenced flag, reports a change, re-arms expiry. */
  #recompute(): void {
    if (this.#closed) return;
    const p = this.#p;
    const now = p.clock.now();
    const mono = p.clock.monoNow();
    const member = !p.observer && !this.#left;
    // Our own lease, not our entry in the table, says whether we may place keys on ourselves.
    if (member && this.#rejoin === undefined && !this.#lease.live(mono))
      this.#rejoin = new Rejoin(this.#members, p.id, this.#table, !p.stream);
    let fenced = false;
    const r = member ? this.#rejoin : undefined;
    if (r !== undefined) {
      r.witness?.watch(this.#table, mono, this.#lease.ackSentAt, p.config.heartbeatMs);
      if (!this.#lease.pendingLive(mono) || !this.#rejoined(mono)) fenced = true;
      else this.#leaseKept = this.#lease.renew() && (r.witness?.kept ?? true);
    }
    const held = this.#doubtful(mono, fenced);
    this.#table.sweep(now, held, mono);
    const live = this.#table.live(mono);
    // Held peers are not members while fenced (jetstream mode keeps them in the table: takeover.ts
    // expiredPeers). A node fenced while it rejoins may see itself live, but must not place keys
    // on itself yet; one whose lease is live is a member even if its entry in the table aged out.
    const withSelf = fenced || !member || live.includes(p.id) ? live : [...live, p.id];
    const members = fenced
      ? live.filter((id) => id !== p.id)
      : held.size === 0
        ? withSelf.sort()
        : [...withSelf, ...held].sort();
    this.admission.prune(members);
    const changed =
      this.admission.takeChanged() || fenced !== this.#fenced || !sameList(members, this.#members);
    if (fenced && !this.#fenced) {
      p.logger.warn(
        `node ${p.id}: its lease lapsed ${Math.round(mono - this.#lease.until)} ms ago (no echo of its heartbeats for ${Math.round(mono - this.#lease.sentAt)} ms); fencing itself`,
      );
    } else if (!fenced && this.#fenced)
      p.logger.info(`node ${p.id}: sees its own heartbeats again; unfenced (lease kept: ${this.#leaseKept})`);
    this.#members = members;
    this.#held = held;
    this.#fenced = fenced;
    this.#scheduleExpiry();
    if (changed) p.onChange(members, fenced);
  }

  /** Expired peers this node may not drop yet (fencing.ts); observers own nothing, never hold. */
  #doubtful(mono: number, fenced: boolean): ReadonlySet<string> {
    const p = this.#p;
    if (p.observer || this.#left) return new Set();
    // jetstream mode: while fenced, expired peers stay in the table (not the view) until a read.
    if (fenced || !this.#lease.live(mono))
      return this.#takeover ? expiredPeers(this.#table, p.id, mono) : new Set();
    const held = doubtfulPeers(this.#table, p.id, this.#lease.sentAt, mono, p.config.heartbeatMs);
    // jetstream mode: an expired peer goes only once the stream leader confirmed its silence.
    return this.#takeover ? holdUnconfirmed(this.#takeover, this.#table, p.id, mono, held) : held;
  }

  /** Whether a fenced node may take partitions back (fencing.ts); our echoes re-run it. */
  #rejoined(mono: number): boolean {
    const r = this.#rejoin;
    if (r === undefined) return true;
    const ok = r.done(
      mono,
      this.#syncedAt,
      this.#p.config.ttlMs,
      () => void this.#sync(1000).catch(() => {}),
    );
    if (ok) this.#rejoin = undefined;
    return ok;
  }

  #scheduleExpiry(): void {
    const p = this.#p;
    // Held leases have expired already; they are re-judged at our next echo, not on a timer.
    let at = this.#table.nextExpiry(this.#held);
    // Our own lease lapsing fences us (unless an echo renews it first).
    if (!p.observer && !this.#left && this.#rejoin === undefined && Number.isFinite(this.#lease.until)) {
      const own = this.#lease.until + 1;
      if (at === undefined || own < at) at = own;
    }
    this.#wake.arm(at);
  }
}
