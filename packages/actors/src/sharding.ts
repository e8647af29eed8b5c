// Sharding: entities on top of a ShardNode. Hosts the entity types it is given, answers
// requests on its node subject, moves partitions' entities on ownership changes, and routes
// asks and tells by key from any process (Sharding.connect gives a client that hosts nothing).
import {
  type Clock,
  consoleLogger,
  type Logger,
  NatsTransport,
  parseClusterConfig,
  parseShardNodeOptions,
  ShardNode,
  type ShardNodeOptions,
  systemClock,
  type Transport,
  type TransportSubscription,
} from "@keyhold/core";
import { connect } from "@nats-io/transport-node";
import { v4 as uuidv4 } from "uuid";
import { actorsAdmin, LatencyHistogram } from "./admin.js";
import { Deadlines } from "./deadlines.js";
import { DedupeCache } from "./dedupe.js";
import {
  type AskOptions,
  defineEntity,
  type Entity,
  type EntityClass,
  type EntityDefinition,
  type EntityRef,
  isValidEntityKey,
} from "./entity.js";
import { EntityHost, emptyHostStats, type HostStats, type Slot } from "./entity-host.js";
import {
  ActorErrorCode,
  DeadlineExceededError,
  InvalidEntityError,
  InvalidRequestError,
  MailboxFullError,
  StoreConflictError,
  toWireError,
  UnknownEntityTypeError,
  UnknownHandlerError,
} from "./errors.js";
import { emptyHandoffStats, type HandoffStats, PartitionTable, type Peer } from "./handoff.js";
import { type ParsedShardingOptions, parseShardingOptions, type ShardingOptions } from "./options.js";
import { emptyReplicationStats, Replicator } from "./replication.js";
import { type LocalOutcome, Router, type RouterStats } from "./router.js";
import type { StateStore } from "./store.js";
import {
  type AskMessage,
  assertSerializable,
  decodeRequest,
  encode,
  isError,
  MAX_HOPS,
  nodeSubject,
} from "./wire.js";

/** How long a hand-off took, reported by `handoffs()`. */
export interface HandoffInfo {
  readonly partition: number;
  /** The members asked for the partition's records. */
  readonly from: readonly string[];
  readonly ms: number;
  readonly records: number;
  /** When it completed (the node's clock, ms since the epoch). */
  readonly at: number;
}

export interface ShardingStats {
  readonly router: Readonly<RouterStats>;
  readonly host: Readonly<HostStats> & { readonly active: number; readonly known: number };
  readonly handoff: Readonly<HandoffStats> & { readonly outbox: number };
  readonly replication: {
    readonly writes: number;
    readonly quorumFailures: number;
    readonly copiesIn: number;
    readonly copiesStale: number;
    readonly refills: number;
    readonly refillsFailed: number;
    readonly copies: number;
  };
  readonly requests: {
    readonly served: number;
    readonly redirected: number;
    readonly deduplicated: number;
    readonly malformed: number;
    readonly tellsDropped: number;
  };
}

const OUTBOX_RETENTION_FACTOR = 6;

export class Sharding implements AsyncDisposable {
  /** The membership and placement node underneath. */
  readonly node: ShardNode;
  /** True for a client from Sharding.connect (hosts nothing). */
  readonly client: boolean;
  readonly #opts: ParsedShardingOptions;
  readonly #defs: ReadonlyMap<string, EntityDefinition>;
  readonly #transport: Transport;
  readonly #ownsTransport: boolean;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #router: Router;
  readonly #host: EntityHost | undefined;
  readonly #parts: PartitionTable | undefined;
  readonly #dedupe: DedupeCache;
  readonly #deadlines: Deadlines;
  readonly #store: StateStore | undefined;
  #replicator: Replicator | undefined;
  readonly #handoffs: HandoffInfo[] = [];
  readonly #latency = new LatencyHistogram();
  #sub: TransportSubscription | undefined;
  #events: Promise<void> | undefined;
  #outboxTimer: unknown;
  #closing: Promise<void> | undefined;
  readonly #req = { served: 0, redirected: 0, deduplicated: 0, malformed: 0, tellsDropped: 0 };

  private constructor(args: {
    node: ShardNode;
    client: boolean;
    opts: ParsedShardingOptions;
    defs: Map<string, EntityDefinition>;
    transport: Transport;
    ownsTransport: boolean;
    clock: Clock;
    logger: Logger;
    store: StateStore | undefined;
  }) {
    this.node = args.node;
    this.#store = args.store;
    this.client = args.client;
    this.#opts = args.opts;
    this.#defs = args.defs;
    this.#transport = args.transport;
    this.#ownsTransport = args.ownsTransport;
    this.#clock = args.clock;
    this.#logger = args.logger;
    this.#dedupe = new DedupeCache(args.opts.dedupeWindowMs, args.opts.dedupeMaxEntries);
    this.#deadlines = new Deadlines(args.clock);
    const cluster = args.node.cluster;
    if (!args.client) {
      const replicated = [...args.defs.values()].some((d) => d.replicas > 1);
      if (replicated) {
        this.#replicator = new Replicator({
          node: args.node,
          transport: args.transport,
          cluster,
          nodeId: args.node.id,
          clock: args.clock,
          logger: args.logger,
          timeoutMs: args.opts.replicationTimeoutMs,
          quorum: args.opts.writeQuorum,
          replicasOf: (t) => args.defs.get(t)?.replicas ?? 1,
          orphanGraceMs: args.opts.handoffTimeoutMs * 2,
        });
      }
      this.#host = new EntityHost({
        mailboxSize: args.opts.mailboxSize,
        concurrency: args.opts.concurrency,
        maxActive: args.opts.maxActive,
        idleMs: args.opts.idleMs,
        clock: args.clock,
        logger: args.logger,
        nodeId: args.node.id,
        load: args.store ? (slot) => this.#load(slot) : undefined,
        afterHandle: args.store || replicated ? (slot) => this.#persist(slot) : undefined,
        tracksAsks: (def) => args.store !== undefined || def.replicas > 1,
        forgetDormant: args.store !== undefined,
      });
      this.#parts = new PartitionTable({
        node: args.node,
        transport: args.transport,
        host: this.#host,
        defs: args.defs,
        cluster,
        nodeId: args.node.id,
        handoffTimeoutMs: args.opts.handoffTimeoutMs,
        attemptTimeoutMs: args.opts.attemptTimeoutMs,
        bufferLimit: args.opts.mailboxSize * 16,
        replicator: this.#replicator,
        clock: args.clock,
        logger: args.logger,
        onHandoff: (info) => {
          this.#handoffs.push({ ...info, at: args.clock.now() });
          if (this.#handoffs.length > 10_000) this.#handoffs.shift();
        },
      });
    }
    this.#router = new Router({
      node: args.node,
      transport: args.transport,
      cluster,
      clock: args.clock,
      askTimeoutMs: args.opts.askTimeoutMs,
      attemptTimeoutMs: args.opts.attemptTimeoutMs,
      local: args.client ? undefined : (t, k, h, a, done) => this.#dispatchLocal(t, k, h, a, done),
    });
  }

  /** Starts a node that hosts `entities`, joins the ring and takes over its partitions. */
  static start(options: ShardingOptions): Promise<Sharding> {
    return Sharding.#create(options, false);
  }

  /** Connects a client that sends to entities by key and hosts nothing (an observer of the ring). */
  static connect(options: ShardingOptions): Promise<Sharding> {
    return Sharding.#create(options, true);
  }

  static async #create(options: ShardingOptions, client: boolean): Promise<Sharding> {
    const opts = parseShardingOptions(options);
    // Validate the node options early, before connecting, so a bad option fails fast.
    parseClusterConfig(options);
    const defs = new Map<string, EntityDefinition>();
    for (const cls of opts.entities) {
      const def = defineEntity(cls);
      const existing = defs.get(def.type);
      if (existing && existing.cls !== cls) {
        throw new InvalidEntityError(
          `Two entity classes use type ${JSON.stringify(def.type)}: ${existing.cls.name} and ${cls.name}`,
        );
      }
      defs.set(def.type, def);
    }
    if (!client && defs.size === 0) {
      throw new InvalidEntityError(
        "Sharding.start needs at least one entity class in `entities` (use Sharding.connect for a client)",
      );
    }
    const nodeId = options.nodeId ?? uuidv4().replaceAll("-", "");
    // Sharding owns the connection, not the ShardNode: a closing node must keep answering
    // hand-off pulls after it has left the ring.
    let transport = options.transport;
    let ownsTransport = false;
    // Exactly one way to reach NATS, validated like ShardNode does, before connecting.
    parseShardNodeOptions({
      ...stripActorOptions(options),
      ...(options.servers !== undefined ? { servers: options.servers } : {}),
      ...(options.connection !== undefined ? { connection: options.connection } : {}),
      ...(options.natsOptions !== undefined ? { natsOptions: options.natsOptions } : {}),
      nodeId,
      observer: client,
    });
    if (!transport) {
      if (options.connection) transport = new NatsTransport(options.connection, { owned: false });
      else {
        const nc = await connect({
          servers: typeof options.servers === "string" ? [options.servers] : [...(options.servers ?? [])],
          name: `keyhold-${options.cluster}-${nodeId}`,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          pingInterval: 10_000,
          // Keyhold wraps every request failure in its own errors, so nats.js's async stack
          // traces (two Error objects per request) would be pure cost.
          noAsyncTraces: true,
          ...options.natsOptions,
        });
        transport = new NatsTransport(nc, { owned: true });
        ownsTransport = true;
      }
    }
    const config = parseClusterConfig(options);
    const nodeOptions: ShardNodeOptions = {
      ...stripActorOptions(options),
      // A leaver answers pulls for up to handoffTimeoutMs; joiners must learn of it that long.
      tombstoneMs: Math.max(options.tombstoneMs ?? 0, config.ttlMs + config.skewMs + opts.handoffTimeoutMs),
      nodeId,
      transport,
      observer: client,
    };
    let sharding: Sharding | undefined;
    let sub: TransportSubscription | undefined;
    let store: StateStore | undefined;
    // Peers may send to us as soon as they see our first heartbeat, before construction ends:
    // those requests (replica refills among them) wait here and are handled once we are built.
    const early: [Uint8Array, string | undefined][] = [];
    const onRequest = (data: Uint8Array, reply: string | undefined) => {
      if (sharding) sharding.handleRequest(data, reply);
      else if (early.length < 100_000) early.push([data, reply]);
    };
    try {
      if (!client) {
        // Subscribe before joining: peers may route to us as soon as they see our heartbeat.
        sub = transport.subscribe(nodeSubject(options.cluster, nodeId), (m) => onRequest(m.data, m.reply));
        await transport.flush();
      }
      const connection = transport instanceof NatsTransport ? transport.connection : undefined;
      store = client ? undefined : await opts.store?.open({ connection });
      const node = await ShardNode.start(nodeOptions);
      sharding = new Sharding({
        store,
        node,
        client,
        opts,
        defs,
        transport,
        ownsTransport,
        clock: options.clock ?? systemClock,
        logger: options.logger ?? consoleLogger,
      });
      sharding.#sub = sub;
      if (!client) {
        sharding.#events = sharding.#consumeEvents();
        sharding.#armOutboxExpiry();
        node.admin?.extend(actorsAdmin(sharding, sharding.#host!, sharding.#parts!, sharding.#latency));
        for (const [data, reply] of early.splice(0)) sharding.handleRequest(data, reply);
      }
      return sharding;
    } catch (err) {
      sub?.unsubscribe();
      await store?.close().catch(() => {});
      if (ownsTransport) await transport.close().catch(() => {});
      throw err;
    }
  }

  /** A typed reference to the entity of class `cls` with key `key`. */
  ref<E extends Entity<unknown>>(cls: EntityClass<E>, key: string): EntityRef<E> {
    const def = this.#definition(cls);
    checkKey(key);
    const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
    const base = {
      type: def.type,
      key,
      ask: (h: string, args: unknown[], o?: AskOptions) => this.ask(def, key, h, args, o),
      tell: (h: string, ...args: unknown[]) => this.tell(def, key, h, args),
    };
    return new Proxy(base, {
      get: (target, prop) => {
        if (typeof prop !== "string") return undefined;
        if (prop in target) return target[prop as keyof typeof target];
        if (prop === "then") return undefined; // not a thenable
        let m = methods.get(prop);
        if (!m) {
          if (!def.handlers.has(prop)) throw new UnknownHandlerError(def.type, prop);
          m = (...args: unknown[]) => this.ask(def, key, prop, args);
          methods.set(prop, m);
        }
        return m;
      },
    }) as unknown as EntityRef<E>;
  }

  /** Asks entity `key` of `def` to run handler `h`; resolves with its result. */
  ask(
    def: EntityDefinition | EntityClass,
    key: string,
    h: string,
    args: readonly unknown[],
    o: AskOptions = {},
  ): Promise<unknown> {
    let d: EntityDefinition;
    try {
      d = this.#definition(def);
      checkKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!d.handlers.has(h)) return Promise.reject(new UnknownHandlerError(d.type, h));
    // The fast path: the entity lives here and its partition is served. No id, no copies.
    if (!this.client && o.signal === undefined && this.#closing === undefined) {
      // One hash for both questions: whose is it, and is its partition served here.
      const ring = this.node.ring;
      const p = ring.partition(key);
      if (
        ring.ownerOfPartition(p) === this.node.id &&
        this.#parts!.state(p) === "ready" &&
        this.#defs.get(d.type) === d
      ) {
        try {
          assertSerializable(args, `the arguments of ${d.type}.${h}`, "args");
        } catch (err) {
          return Promise.reject(err);
        }
        const timeout = o.timeout ?? this.#opts.askTimeoutMs;
        return new Promise((resolve, reject) => {
          let settled = false;
          // The message stays queued if it times out: a handler cannot be interrupted.
          const deadline = this.#deadlines.add(this.#clock.now() + timeout, () => {
            if (settled) return;
            settled = true;
            reject(
              new DeadlineExceededError(
                { type: d.type, key, handler: h },
                timeout,
                "the local handler is still running",
              ),
            );
          });
          const slot = this.#host!.slot(d, key, p);
          this.#host!.touch(slot);
          const t0 = performance.now();
          this.#host!.enqueue(slot, {
            h,
            a: args,
            done: (err, r) => {
              this.#latency.record(performance.now() - t0);
              if (settled) return;
              settled = true;
              this.#deadlines.cancel(deadline);
              if (err === undefined) resolve(r);
              // The store refused the write (another node owns the entity): route it again.
              else if (err instanceof StoreConflictError)
                resolve(this.#router.ask(d.type, key, h, args, { timeout }));
              else reject(err);
            },
          });
        });
      }
    }
    return this.#router.ask(d.type, key, h, args, { timeout: o.timeout, signal: o.signal });
  }

  /** Sends handler `h` to entity `key` without waiting: at most once. */
  tell(def: EntityDefinition | EntityClass, key: string, h: string, args: readonly unknown[]): void {
    const d = this.#definition(def);
    checkKey(key);
    if (!d.handlers.has(h)) throw new UnknownHandlerError(d.type, h);
    this.#router.tell(d.type, key, h, args);
  }

  /** The registered definition of a class, or a fresh one for a client addressing an unregistered class. */
  #definition(def: EntityDefinition | EntityClass): EntityDefinition {
    if ("handlers" in def) return def;
    const known = this.#defs.get(def.type);
    if (known && known.cls !== def) {
      throw new InvalidEntityError(
        `Entity type ${JSON.stringify(def.type)} is registered here by class ${known.cls.name}, not ${def.name}`,
      );
    }
    return known ?? defineEntity(def);
  }

  /** Loads the stored state of an entity before it activates (a store is configured). */
  async #load(slot: Slot): Promise<void> {
    const stored = await this.#store!.load(slot.def.type, slot.key);
    // The store is the authority: it holds every acknowledged write. A local copy (from a
    // hand-off or a replica) with a higher version can only hold writes whose store write
    // failed, which were never acknowledged, so the stored state wins.
    if (stored) {
      slot.state = stored.state;
      slot.version = stored.version;
      slot.recent = stored.recent ? [...stored.recent] : undefined;
    }
    slot.revision = stored?.revision;
  }

  /**
   * Makes a handled message durable before its caller hears of it: written to the store (at
   * the revision this node last saw) and copied to the replica quorum. Undefined when the
   * entity type needs neither.
   */
  #persist(slot: Slot): Promise<void> | undefined {
    const store = this.#store;
    const replicate = slot.def.replicas > 1 && this.#replicator !== undefined;
    if (!store && !replicate) return undefined;
    const state = slot.instance ? slot.instance.state : slot.state;
    try {
      assertSerializable(state, `the state of ${slot.def.type}/${slot.key}`, "state");
    } catch (err) {
      return Promise.reject(err);
    }
    const tasks: Promise<unknown>[] = [];
    if (store) {
      tasks.push(
        store
          .save(slot.def.type, slot.key, { state, version: slot.version, recent: slot.recent }, slot.revision)
          .then(
            (rev) => {
              slot.revision = rev;
            },
            (err: unknown) => {
              // Someone else wrote since we loaded: they own it. Give it up; routing retries.
              if (err instanceof StoreConflictError) this.#host!.giveUp(slot, err);
              throw err;
            },
          ),
      );
    }
    if (replicate) {
      tasks.push(
        this.#replicator!.write({ ...this.#host!.record(slot), s: state, act: true }, slot.partition),
      );
    }
    return Promise.all(tasks).then(() => {});
  }

  /** Hands a message to this node's host when it owns and serves the key. */
  #dispatchLocal(
    type: string,
    key: string,
    h: string,
    args: readonly unknown[],
    done: (o: LocalOutcome) => void,
    id?: string,
  ): void {
    const def = this.#defs.get(type);
    if (!def) return done({ ok: false, error: new UnknownEntityTypeError(type) });
    const retry = () => this.#dispatchLocal(type, key, h, args, done, id);
    // Keeps serving while closing: until the node has left, it still owns these keys.
    if (this.node.place(key) !== this.node.id) return done({ moved: true });
    const p = this.node.ring.partition(key);
    const st = this.#parts!.state(p);
    if (st === "ready") {
      const slot = this.#host!.slot(def, key, p);
      this.#host!.touch(slot);
      this.#host!.enqueue(slot, {
        id,
        h,
        a: args,
        done: (err, r) =>
          done(
            err === undefined
              ? { ok: true, result: r }
              : err instanceof StoreConflictError
                ? { moved: true } // not applied: the store refused it; the sender retries
                : { ok: false, error: err },
          ),
      });
    } else if (st === "releasing") done({ moved: true });
    else if (!this.#parts!.buffer(p, retry))
      done({ ok: false, error: new MailboxFullError(type, key, this.#opts.mailboxSize * 16) });
  }

  /** @internal Handles one request that arrived on this node's subject. */
  handleRequest(data: Uint8Array, reply: string | undefined): void {
    const msg = decodeRequest(data);
    if (isError(msg)) {
      this.#req.malformed++;
      this.#logger.debug(`node ${this.node.id}: dropped a malformed request: ${msg.error}`);
      return;
    }
    const respond = (d: Uint8Array) => {
      if (reply) this.#reply(reply, d);
    };
    switch (msg.k) {
      case "ask":
        if (!reply) {
          this.#req.malformed++;
          return;
        }
        return this.#serveAsk(msg, respond);
      case "tell":
        return this.#serveTell(msg);
      case "pull":
        if (!reply || !this.#parts) {
          this.#req.malformed++;
          return;
        }
        this.#parts.servePull(msg.p, msg.from, respond, msg.c).catch((err: unknown) => {
          this.#logger.error(
            `node ${this.node.id}: answering a pull of partition ${msg.p} failed: ${String(err)}`,
          );
        });
        return;
      case "ack":
        this.#parts?.ack(msg.p);
        return;
      case "rep":
        if (!this.#replicator) {
          this.#req.malformed++;
          return;
        }
        this.#replicator.receive(msg.p, msg.recs);
        respond(encode({ v: 1, k: "repok", n: msg.recs.length }));
        return;
    }
  }

  /**
   * Publishes a reply; one the server refuses (larger than its max_payload) becomes an error
   * reply, so the caller hears why instead of waiting out its deadline.
   */
  #reply(subject: string, data: Uint8Array): void {
    try {
      this.#transport.publish(subject, data);
    } catch (err) {
      this.#logger.warn(`node ${this.node.id}: reply of ${data.length} bytes not sent: ${String(err)}`);
      try {
        this.#transport.publish(
          subject,
          encode({
            v: 1,
            k: "err",
            e: {
              code: ActorErrorCode.NotSerializable,
              message: `The reply (${data.length} bytes) could not be sent: ${String(err).slice(0, 200)}`,
              name: "NotSerializableError",
            },
          }),
        );
      } catch {
        // The connection itself is gone; the caller's deadline covers it.
      }
    }
  }

  #serveAsk(msg: AskMessage, respond: (d: Uint8Array) => void): void {
    const now = this.#clock.now();
    const t0 = performance.now();
    if (this.#dedupe.enabled) {
      const seen = this.#dedupe.begin(msg.id, now);
      if (seen instanceof Uint8Array) {
        this.#req.deduplicated++;
        return respond(seen);
      }
      if (seen !== undefined) {
        this.#req.deduplicated++;
        void seen.then(respond);
        return;
      }
    }
    this.#dispatchLocal(
      msg.t,
      msg.key,
      msg.h,
      msg.a,
      (o) => {
        if ("moved" in o) {
          this.#req.redirected++;
          const moved = encode({ v: 1, k: "moved", owner: this.node.place(msg.key) ?? null });
          if (this.#dedupe.enabled) this.#dedupe.forget(msg.id, moved);
          return respond(moved);
        }
        this.#req.served++;
        this.#latency.record(performance.now() - t0);
        const out = o.ok
          ? encode({ v: 1, k: "ok", r: o.result })
          : encode({ v: 1, k: "err", e: toWireError(o.error) });
        if (this.#dedupe.enabled) this.#dedupe.complete(msg.id, out);
        respond(out);
      },
      msg.id,
    );
  }

  #serveTell(msg: AskMessage): void {
    this.#dispatchLocal(msg.t, msg.key, msg.h, msg.a, (o) => {
      if ("moved" in o) {
        if (msg.hop >= MAX_HOPS || !this.#router.forward(msg.t, msg.key, msg.h, msg.a, msg.id, msg.hop + 1)) {
          this.#req.tellsDropped++;
        }
        return;
      }
      this.#req.served++;
      if (!o.ok)
        this.#logger.debug(
          `node ${this.node.id}: tell ${msg.t}/${msg.key}.${msg.h} failed: ${String(o.error)}`,
        );
    });
  }

  /** Turns ownership events into hand-off steps, tracking which members might hold records. */
  async #consumeEvents(): Promise<void> {
    const parts = this.#parts!;
    const self = this.node.id;
    // Who may hold a partition's records: live members; members that left gracefully and may
    // still be handing off (tombstones cover the hand-off time, and the join-time sync brings
    // them to nodes that joined since); and, asked with less patience, members whose lease
    // expired recently — most crashed and answer "no responders" at once, but one that left
    // before we heard its leave looks the same and may hold records.
    const retention = this.#opts.handoffTimeoutMs * OUTBOX_RETENTION_FACTOR;
    const expired = new Map<string, number>();
    let peers: Peer[] = [];
    for await (const e of this.node.events()) {
      if (e.type === "members") {
        const now = this.#clock.now();
        for (const m of e.left) expired.set(m, now);
        for (const m of e.members) expired.delete(m);
        for (const [m, at] of expired) if (now - at > retention) expired.delete(m);
        const patient = new Set([...e.members, ...this.node.departed()]);
        patient.delete(self);
        peers = [
          ...[...patient].map((id) => ({ id, patient: true })),
          ...[...expired.keys()]
            .filter((m) => !patient.has(m) && m !== self)
            .map((id) => ({ id, patient: false })),
        ];
        if (this.#replicator) {
          // The replica sets of partitions we serve may have changed: top them up.
          this.#replicator.prune();
          for (const p of parts.readyPartitions()) void parts.refill(p);
        }
      } else if (e.type === "acquired") {
        parts.acquire(e.partition, peers);
      } else if (e.type === "released") {
        parts.release(e.partition);
      }
    }
  }

  /** Housekeeping every handoffTimeoutMs: unclaimed outboxes expire, orphaned copies go. */
  #armOutboxExpiry(): void {
    const retention = this.#opts.handoffTimeoutMs * OUTBOX_RETENTION_FACTOR;
    this.#outboxTimer = this.#clock.setTimeout(() => {
      this.#parts?.expireOutbox(retention);
      this.#replicator?.prune();
      this.#armOutboxExpiry();
    }, this.#opts.handoffTimeoutMs);
  }

  /** Counters of routing, hosting and hand-off. */
  stats(): ShardingStats {
    const h = this.#host;
    return {
      router: { ...this.#router.stats },
      host: { ...(h?.stats ?? emptyHostStats()), active: h?.activeCount ?? 0, known: h?.slotCount ?? 0 },
      handoff: { ...(this.#parts?.stats ?? emptyHandoffStats()), outbox: this.#parts?.outboxSize ?? 0 },
      replication: {
        ...(this.#replicator?.stats ?? emptyReplicationStats()),
        copies: this.#replicator?.copyCount ?? 0,
      },
      requests: { ...this.#req },
    };
  }

  /** Completed hand-offs (acquire to serving), oldest first; the last 10,000. */
  handoffs(): readonly HandoffInfo[] {
    return this.#handoffs;
  }

  /**
   * Leaves gracefully: refuses new asks and waits for those under way, announces the leave,
   * lets queued messages finish, passivates every
   * entity and keeps answering until the new owners have pulled their state (or
   * `handoffTimeoutMs` passed), then disconnects. Asks still retrying here fail with
   * ShardingClosedError. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const parts = this.#parts;
      // Asks this node sent finish first, while it is still a full member that can route.
      this.#router.stopAccepting();
      await this.#router.drain(this.#opts.askTimeoutMs);
      // Leave the ring but keep watching it, so the records go to owners our view can name.
      await this.node.leave();
      if (parts) {
        const deadline = this.#clock.now() + this.#opts.handoffTimeoutMs;
        // Wait while someone is left to take the records; the last member has nobody to wait for.
        while (
          (parts.heldCount > 0 || parts.outboxSize > 0) &&
          this.node.members().length > 0 &&
          this.#clock.now() < deadline
        ) {
          await new Promise<void>((r) => this.#clock.setTimeout(r, 10));
        }
        await parts.settled();
        if (parts.outboxSize > 0) {
          this.#logger.warn(
            this.node.members().length === 0
              ? `node ${this.node.id}: closing as the last member; the state of ${parts.outboxSize} partitions is dropped`
              : `node ${this.node.id}: closing with ${parts.outboxSize} partitions not taken by a new owner within ${this.#opts.handoffTimeoutMs} ms`,
          );
        }
      }
      await this.node.close();
      await this.#events;
      await parts?.settled();
      this.#router.close();
      this.#clock.clearTimeout(this.#outboxTimer);
      this.#host?.close();
      this.#deadlines.close();
      this.#sub?.unsubscribe();
      await this.#store?.close().catch(() => {});
      if (this.#ownsTransport) await this.#transport.close();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The ShardNode options, without the actor-level ones. */
function stripActorOptions(o: ShardingOptions): Omit<ShardNodeOptions, "cluster"> & { cluster: string } {
  const {
    entities: _e,
    askTimeoutMs: _a,
    attemptTimeoutMs: _t,
    mailboxSize: _m,
    concurrency: _c,
    idleMs: _i,
    maxActive: _x,
    handoffTimeoutMs: _h,
    dedupeWindowMs: _d,
    dedupeMaxEntries: _n,
    store: _st,
    writeQuorum: _wq,
    replicationTimeoutMs: _rt,
    servers: _s,
    connection: _cn,
    natsOptions: _no,
    ...rest
  } = o;
  return rest;
}

function checkKey(key: unknown): asserts key is string {
  if (!isValidEntityKey(key)) {
    throw new InvalidRequestError(
      `Expected an entity key to be a non-empty string of at most 1024 characters, got ${typeof key === "string" ? `a string of ${key.length}` : typeof key}`,
    );
  }
}
