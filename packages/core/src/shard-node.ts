// ShardNode: the public face of @keyhold/core. A member of the ring (or an observer) that
// answers placement questions from a precomputed Ring and reports ownership changes.
import { v4 as uuidv4 } from "uuid";
import { type AdminResponder, startAdmin } from "./admin.js";
import { sameCaps } from "./admission.js";
import type { Clock } from "./clock.js";
import { connectNats } from "./connection.js";
import { ClosedError, InvalidArgumentError } from "./errors.js";
import { EventHub, type ShardEvent } from "./events.js";
import type { Key } from "./hash.js";
import type { HeartbeatStream } from "./heartbeat-stream.js";
import { JoinStepper } from "./join-steps.js";
import { resolveLeases } from "./lease-mode.js";
import { type LeaseStats, Membership, type MembershipStats } from "./membership.js";
import {
  CLUSTER_SETTINGS,
  type ClusterConfig,
  type LeaseMode,
  parseOptions,
  type ShardNodeOptions,
} from "./options.js";
import { Ring } from "./ring.js";
import { adoptClusterConfig } from "./sync.js";
import { NatsTransport, type Transport } from "./transport.js";
import { checkPlacementKey } from "./validate.js";

export class ShardNode implements AsyncDisposable {
  /** This member's id. */
  readonly id: string;
  readonly cluster: string;
  /** The settings every node of the cluster shares. */
  readonly config: ClusterConfig;
  /** Observers track the ring but are not members of it. */
  readonly observer: boolean;
  readonly #transport: Transport;
  // A transport passed in belongs to the caller (Sharding keeps using it after we leave).
  readonly #ownsTransport: boolean;
  readonly #membership: Membership;
  readonly #clock: Clock;
  /**
   * A monotonic time before which this node's lease is known to be valid: the lease's end as
   * membership last reported it. Safe to compare against because that end only moves later
   * while nothing else changes, and every other way a lease ends (fencing, which only follows a
   * lapse, a change of the member set, leave, close) resets it here first (#onChange, leave(),
   * close()). packages/core/test/lease.property.test.ts checks leaseValid() against an outside
   * model of the heartbeats at every step, across pauses; lease.test.ts after leave() and close().
   */
  #validUntil = Number.NEGATIVE_INFINITY;
  readonly #hub = new EventHub<ShardEvent>();
  #ring: Ring;
  #owned: ReadonlySet<number> = new Set();
  #closed: Promise<void> | undefined;
  #admin: AdminResponder | undefined;
  // Joining step by step (join-steps.ts); no step before #joinNotBefore (one heartbeat owning nothing).
  readonly #steps: JoinStepper;
  #joinNotBefore = Number.POSITIVE_INFINITY;
  #fencedSeen = false;

  private constructor(
    id: string,
    transport: Transport,
    opts: ReturnType<typeof parseOptions>,
    stream: HeartbeatStream | undefined,
  ) {
    this.id = id;
    this.cluster = opts.cluster;
    this.config = opts.config;
    this.observer = opts.observer;
    this.#transport = transport;
    this.#clock = opts.clock;
    this.#ownsTransport = opts.transport === undefined;
    this.#ring = new Ring([], opts.config.ringSize);
    this.#steps = new JoinStepper(opts.joinStepPartitions, opts.config.ringSize);
    this.#membership = new Membership({
      transport,
      cluster: opts.cluster,
      id,
      config: opts.config,
      observer: opts.observer,
      stream,
      tombstoneMs: opts.tombstoneMs,
      clock: opts.clock,
      logger: opts.logger,
      joinStep: opts.joinStepPartitions === 0 ? 0 : 1, // Membership asks only whether it steps
      beforeBeat: () => this.#stepJoin(),
      onChange: (members, fenced) => this.#onChange(members, fenced),
    });
  }

  /**
   * Connects (unless given a connection or transport), joins the cluster's ring and resolves
   * once this node sees its own heartbeat, with the lease table already fetched from a peer.
   * Rejects with ConfigMismatchError when the running cluster uses other settings. An observer
   * adopts the ring size and lease timings it was not given from the first member that answers
   * (StartTimeoutError when none does within `startTimeoutMs`); only given ones must match.
   */
  static async start(options: ShardNodeOptions): Promise<ShardNode> {
    const opts = parseOptions(options);
    const id = opts.nodeId ?? uuidv4().replaceAll("-", "");
    let transport = opts.transport;
    if (!transport) {
      const nc =
        opts.connection ??
        (await connectNats({
          servers: opts.servers ?? [],
          cluster: opts.cluster,
          nodeId: id,
          natsOptions: opts.natsOptions,
        }));
      transport = new NatsTransport(nc, { owned: opts.connection === undefined });
    }
    let node: ShardNode | undefined;
    try {
      // An observer learns the settings it was not given from the running cluster.
      const adopt = opts.observer && opts.given.size < CLUSTER_SETTINGS.length;
      let config: ClusterConfig;
      let stream: HeartbeatStream | undefined;
      if (adopt)
        config = await adoptClusterConfig({ ...opts, transport, self: id, timeoutMs: opts.startTimeoutMs });
      else {
        const resolved = await resolveLeases(opts, transport, id);
        config = { ...opts.config, leases: resolved.leases };
        stream = resolved.stream;
      }
      const tombstoneMs = Math.max(opts.tombstoneMs, config.ttlMs + config.skewMs);
      node = new ShardNode(id, transport, { ...opts, config, tombstoneMs }, stream);
      await node.#membership.start(opts.startTimeoutMs);
      node.#joinNotBefore = opts.clock.monoNow() + config.heartbeatMs;
    } catch (err) {
      if (node) await node.#membership.close().catch(() => {});
      if (!opts.transport) await transport.close().catch(() => {});
      throw err;
    }
    node.#admin = startAdmin(node, transport, opts, (id) => node.#membership.emittedAt(id));
    return node;
  }

  /** The partition of a key, 0 .. ringSize-1. */
  partition(key: Key): number {
    checkPlacementKey(key);
    return this.#ring.partition(key);
  }

  /** The live member that owns `key`, or undefined when no member is live. */
  place(key: Key): string | undefined {
    checkPlacementKey(key);
    return this.#ring.place(key);
  }

  /** The `n` best distinct live members for `key`, best first; fewer when fewer are live. */
  owners(key: Key, n: number): string[] {
    checkPlacementKey(key);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError("n", "an integer >= 0", n);
    return this.#ring.owners(key, n);
  }

  /** Whether this node owns `key` now. */
  isOwner(key: Key): boolean {
    return this.place(key) === this.id;
  }

  /** Live member ids, sorted. Excludes this node while it is fenced. */
  members(): readonly string[] {
    return this.#ring.members;
  }

  /** Members that left gracefully within `tombstoneMs`, sorted (not crashed ones). */
  departed(): string[] {
    return this.#membership.departed();
  }

  /** Partitions this node owns now, ascending. */
  ownedPartitions(): number[] {
    return [...this.#owned].sort((a, b) => a - b);
  }

  /** The current ring: placement for the current member set. Replaced on every change. */
  get ring(): Ring {
    return this.#ring;
  }

  /** True while this node cannot see its own heartbeats and so owns nothing. */
  get fenced(): boolean {
    return this.#membership.fenced;
  }

  /**
   * Whether this node holds a valid lease now: read from the monotonic clock at the call, so
   * after a pause it is false before any queued input is handled. A node acts as an owner only
   * while this is true (and its ring names it). False for observers, after leave(), while fenced.
   */
  leaseValid(): boolean {
    return this.leaseValidAt(this.#clock.monoNow());
  }

  /**
   * leaseValid() at monotonic time `now`: a reading of `monoNow()` the caller took just now, so
   * a path that reads the clock anyway (to time what it does) pays for no second read. A stale
   * `now` makes the answer stale by as much: never pass a reading from before an await.
   */
  leaseValidAt(now: number): boolean {
    if (now < this.#validUntil) return true;
    // Past the cached end (or none cached): ask membership, which reads the clock again; the
    // end it implies is at least `now + left`, so caching that errs on the early side.
    const left = this.#membership.leaseRemainingMs();
    if (left <= 0) return false;
    this.#validUntil = now + left;
    return true;
  }

  /** This node's monotonic clock, ms (the time base of leaseValidAt). */
  monoNow(): number {
    return this.#clock.monoNow();
  }

  /** Ms left of this node's own lease (0 when it holds none); see leaseValid(). */
  leaseRemainingMs(): number {
    return this.#membership.leaseRemainingMs();
  }

  /**
   * True while this node's lease lapsed but it has not fenced yet (timers have not run since a
   * pause): it cannot tell what its peers took over, so it must neither act nor hand records over.
   */
  get inDoubt(): boolean {
    return this.#membership.inDoubt;
  }

  /** The transport this node talks over (shared by @keyhold/actors). */
  get transport(): Transport {
    return this.#transport;
  }

  /** Answers `keyhold` admin requests (members only); layers above add to its reports. */
  get admin(): AdminResponder | undefined {
    return this.#admin;
  }

  /** How this node's own lease is renewed: "jetstream" (stream acknowledgements) or "echo". */
  get leaseMode(): LeaseMode {
    return this.config.leases ?? "echo";
  }

  /** Counters of the jetstream lease mode: acknowledgements, and leader reads before take-overs. */
  leaseStats(): Readonly<LeaseStats> {
    return { ...this.#membership.leaseStats };
  }

  /** Counters of membership traffic, including dropped input. */
  stats(): Readonly<MembershipStats> {
    return { ...this.#membership.stats };
  }

  /**
   * Ownership and membership events. Every stream opens with the current state — a `members`
   * event listing every live member as joined, a `fenced` event if fenced, then `acquired` for
   * each owned partition — and continues with every transition after it, with no gap.
   * It ends when the node closes (after the final `released` events) or `signal` aborts.
   */
  events(opts: { signal?: AbortSignal } = {}): AsyncIterableIterator<ShardEvent> {
    const members = this.#ring.members;
    const initial: ShardEvent[] = [{ type: "members", members, joined: members, left: [] }];
    if (this.fenced) initial.push({ type: "fenced" });
    for (const p of this.ownedPartitions()) initial.push({ type: "acquired", partition: p });
    return this.#hub.subscribe(initial, opts.signal);
  }

  /** This node's admission front while it joins step by step; undefined once uncapped. */
  get joinFront(): number | undefined {
    return this.#membership.admission.own;
  }

  /** The next join step waits until `ready(owned)`: the layer above serves what this node owns. */
  setJoinGate(ready: (owned: readonly number[]) => boolean): void {
    this.#steps.ready = ready;
  }

  /**
   * Before a graceful leave, with joinStepPartitions: gives its partitions up that many at a time,
   * one step per heartbeat once `ready(owned)` says the last was handed off; resolves when it owns none.
   */
  releaseStepwise(ready: (owned: readonly number[]) => boolean): Promise<void> {
    const alone = this.#ring.members.length < 2 || this.observer || this.#closed !== undefined;
    return this.#steps.step === 0 || alone ? Promise.resolve() : this.#steps.releaseAll(ready);
  }

  #stepJoin(): void {
    if (this.#closed || this.fenced || this.#clock.monoNow() < this.#joinNotBefore) return;
    const won = this.#ring.partitionsWonBy(this.id);
    const front = this.#steps.next(this.#membership.admission.own, won, [...this.#owned]);
    if (front !== undefined) this.#membership.setFront(front);
  }

  #onChange(members: readonly string[], fenced: boolean): void {
    this.#validUntil = Number.NEGATIVE_INFINITY;
    const before = this.#ring;
    const wasFenced = this.#fencedSeen;
    this.#fencedSeen = fenced;
    const ring = new Ring(members, this.config.ringSize, this.#membership.admission.caps(this.id));
    this.#ring = ring;
    const owned = new Set(this.observer ? [] : ring.partitionsOf(this.id));
    const events: ShardEvent[] = [];
    const [prev, next] = [new Set(before.members), new Set(ring.members)];
    const joined = ring.members.filter((m) => !prev.has(m));
    const left = before.members.filter((m) => !next.has(m));
    if (joined.length > 0 || left.length > 0 || !sameCaps(before.caps, ring.caps))
      events.push({ type: "members", members: ring.members, joined, left });
    if (fenced && !wasFenced) events.push({ type: "fenced" });
    if (!fenced && wasFenced) events.push({ type: "unfenced", leaseKept: this.#membership.leaseKept });
    for (const p of this.#owned) if (!owned.has(p)) events.push({ type: "released", partition: p });
    for (const p of owned) if (!this.#owned.has(p)) events.push({ type: "acquired", partition: p });
    this.#owned = owned;
    this.#hub.emit(events);
  }

  /**
   * Leaves gracefully: announces it so peers drop this node at once, emits `released` for
   * every owned partition, ends every event stream and closes the connection it made.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#validUntil = Number.NEGATIVE_INFINITY;
    this.#steps.stop();
    this.#closed ??= (async () => {
      this.#admin?.close();
      await this.#membership.close();
      // leave() already released everything; this covers a node that never joined fully.
      const events: ShardEvent[] = [...this.#owned].map((p) => ({ type: "released", partition: p }));
      this.#owned = new Set();
      this.#ring = new Ring([], this.config.ringSize);
      this.#hub.emit(events);
      this.#hub.close();
      if (this.#ownsTransport) await this.#transport.close();
    })();
    return this.#closed;
  }

  /**
   * Leaves the ring without closing: announces the leave (peers drop this node at once),
   * releases every partition, and keeps tracking the other members like an observer, so a
   * layer above can hand its partitions to their new owners with a live view. close() later.
   */
  async leave(): Promise<void> {
    this.#validUntil = Number.NEGATIVE_INFINITY;
    this.#steps.stop();
    await this.#membership.leave();
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Throws ClosedError when closed; for layers built on this node. */
  assertOpen(): void {
    if (this.#closed) throw new ClosedError(`Node ${this.id} is closed`);
  }
}
