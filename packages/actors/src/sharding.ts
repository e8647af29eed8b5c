// Sharding: the public facade of @keyhold/actors. Starts a node that hosts entity types (or a
// client that hosts nothing), builds the node's parts and wires them one way — inbound request
// → dispatch (the ownership check) → mailbox → handler → durability → reply — and offers ref,
// ask, tell, stats and close. Where each part lives: docs/concepts/entities.md.
import {
  type Clock,
  consoleLogger,
  Deadlines,
  ID_PATTERN,
  type Logger,
  type MessageHeaders,
  NatsTransport,
  parseClusterConfig,
  ShardNode,
  type ShardNodeOptions,
  systemClock,
  type Transport,
} from "@keyhold/core";
import { v4 as uuidv4 } from "uuid";
import { actorsAdmin } from "./admin.js";
import { sleep } from "./backoff.js";
import { nodeOptionsOf, openTransport } from "./connection.js";
import { DedupeCache } from "./dedupe.js";
import {
  type AskOptions,
  checkEntityKey,
  defineEntity,
  type Entity,
  type EntityClass,
  type EntityDefinition,
  type EntityRef,
  entityRef,
  type TypeName,
} from "./entity.js";
import { type EpochSource, localEpochs, openEpochs } from "./epochs.js";
import { InvalidEntityError, InvalidRequestError, UnknownHandlerError } from "./errors.js";
import { emptyHostStats, type HostStats } from "./handler.js";
import { emptyHandoffStats, type HandoffStats } from "./handoff.js";
import { buildHost, type HostParts } from "./host.js";
import { Inbound, type InboundStats } from "./inbound.js";
import { dormantCopyExpired } from "./lifecycle.js";
import { type ParsedShardingOptions, parseShardingOptions, type ShardingOptions } from "./options.js";
import { OUTBOX_RETENTION_FACTOR } from "./outbox.js";
import type { ReminderStats } from "./reminders.js";
import { emptyReplicationStats, Replicator } from "./replication.js";
import { Router, type RouterStats } from "./router.js";
import { validArgs } from "./schema.js";
import type { StateStore } from "./store.js";
import { Telemetry } from "./telemetry.js";
import { nodeSubject } from "./wire.js";

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
    /** Copies refused with `stale` (from a non-primary, or older than ours). */
    readonly copiesRefused: number;
    /** Our writes a replica refused with `stale` (the entity was given up). */
    readonly writesRefused: number;
    /** Of copiesRefused: those of an epoch below the highest this node knows for the partition. */
    readonly epochRefused: number;
    readonly refills: number;
    readonly refillsFailed: number;
    readonly copies: number;
  };
  readonly requests: Readonly<InboundStats>;
  readonly reminders: Readonly<ReminderStats>;
}

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
  readonly #host: HostParts | undefined;
  readonly #hostStats = emptyHostStats();
  readonly #deadlines: Deadlines;
  readonly #inbound: Inbound;
  readonly #store: StateStore | undefined;
  readonly #replicator: Replicator | undefined;
  readonly #handoffs: HandoffInfo[] = [];
  readonly #telemetry: Telemetry;
  #events: Promise<void> | undefined;
  #housekeepingTimer: unknown;
  #closing: Promise<void> | undefined;

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
    epochs: EpochSource | undefined;
    inbound: Inbound;
    telemetry: Telemetry;
  }) {
    const { node, opts, defs, clock, logger, transport } = args;
    this.node = node;
    this.#store = args.store;
    this.client = args.client;
    this.#opts = opts;
    this.#defs = defs;
    this.#transport = transport;
    this.#ownsTransport = args.ownsTransport;
    this.#clock = clock;
    this.#logger = logger;
    this.#inbound = args.inbound;
    this.#telemetry = args.telemetry;
    this.#deadlines = new Deadlines(clock);
    const cluster = node.cluster;
    const nodeId = node.id;
    const replicated = [...defs.values()].some((d) => d.replicas > 1);
    if (!args.client && replicated) {
      this.#replicator = new Replicator({
        node,
        transport,
        cluster,
        nodeId,
        clock,
        logger,
        timeoutMs: opts.replicationTimeoutMs,
        quorum: opts.writeQuorum,
        replicasOf: (t) => defs.get(t)?.replicas ?? 1,
        orphanGraceMs: opts.handoffTimeoutMs * 2,
        dormant: args.store ? (at, now) => dormantCopyExpired(at, now, opts.idleMs) : undefined,
      });
    }
    this.#router = new Router({
      node,
      transport,
      cluster,
      clock,
      deadlines: this.#deadlines,
      askTimeoutMs: opts.askTimeoutMs,
      attemptTimeoutMs: opts.attemptTimeoutMs,
      local: args.client
        ? undefined
        : (t, k, h, a, done) => this.#host!.dispatcher.dispatch(t, k, h, a, done),
    });
    if (!args.client) {
      this.#host = buildHost({
        node,
        opts,
        defs,
        transport,
        clock,
        logger,
        stats: this.#hostStats,
        store: args.store,
        replicator: this.#replicator,
        deadlines: this.#deadlines,
        telemetry: args.telemetry,
        reroute: (t, k, h, a, timeout) => this.#router.ask(t, k, h, a, { timeout }),
        epochs: args.epochs ?? localEpochs(clock),
        onHandoff: (info) => {
          this.#handoffs.push({ ...info, at: clock.now() });
          if (this.#handoffs.length > 10_000) this.#handoffs.shift();
          if (args.telemetry.on) args.telemetry.handoff(info);
        },
      });
    }
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
    const telemetry = await Telemetry.create(options.telemetry);
    // Validate the node options early, before connecting, so a bad option fails fast.
    const config = parseClusterConfig(options);
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
    const { transport, owned } = await openTransport(options, nodeId, client);
    const nodeOptions: ShardNodeOptions = {
      ...nodeOptionsOf(options),
      // A leaver answers pulls for up to handoffTimeoutMs; joiners must learn of it that long.
      tombstoneMs: Math.max(options.tombstoneMs ?? 0, config.ttlMs + config.skewMs + opts.handoffTimeoutMs),
      nodeId,
      transport,
      observer: client,
    };
    const logger = options.logger ?? consoleLogger;
    // Requests that arrive before construction ends (replica refills among them) wait in the inbox.
    const inbound = new Inbound(transport, logger, opts.startupBufferBytes);
    let store: StateStore | undefined;
    try {
      if (!client) await inbound.listen(nodeSubject(options.cluster, nodeId));
      const connection = transport instanceof NatsTransport ? transport.connection : undefined;
      store = client ? undefined : await opts.store?.open({ connection });
      if (store && telemetry.on) store = telemetry.store(store);
      const clock = options.clock ?? systemClock;
      const epochs = client
        ? undefined
        : await openEpochs({
            ...opts,
            mode: opts.epochs,
            connection,
            cluster: options.cluster,
            nodeId,
            clock,
            logger,
            timeoutMs: opts.attemptTimeoutMs,
          });
      const node = await ShardNode.start(nodeOptions);
      const sharding = new Sharding({
        store,
        epochs,
        node,
        client,
        opts,
        defs,
        transport,
        ownsTransport: owned,
        clock: options.clock ?? systemClock,
        logger,
        inbound,
        telemetry,
      });
      const host = sharding.#host;
      if (host) {
        sharding.#events = host.handoff.follow();
        sharding.#armHousekeeping();
        node.admin?.extend(actorsAdmin(sharding, host));
      }
      if (telemetry.on)
        telemetry.observe({ node, stats: () => sharding.stats(), census: () => host?.slots.census() });
      inbound.serve({
        nodeId,
        clock: sharding.#clock,
        dispatcher: host?.dispatcher,
        replicator: sharding.#replicator,
        router: sharding.#router,
        dedupe: new DedupeCache(opts.dedupeWindowMs, opts.dedupeMaxEntries),
        ownerOf: (key) => node.place(key),
        telemetry,
      });
      return sharding;
    } catch (err) {
      inbound.close();
      await store?.close().catch(() => {});
      if (owned) await transport.close().catch(() => {});
      throw err;
    }
  }

  /**
   * A typed reference to the entity with key `key`: by class (`ref(Counter, key)`: handler
   * names and, on a client, argument schemas are checked here), or by type name with the entity
   * type as a type argument (`ref<Counter>("counter", key)`: needs only `import type`; the
   * owner checks the handler name and arguments).
   */
  ref<E extends Entity<unknown>>(cls: EntityClass<E>, key: string): EntityRef<E>;
  ref<E extends Entity<unknown>>(type: string, key: string): EntityRef<E>;
  ref<E extends Entity<unknown>>(target: EntityClass<E> | string, key: string): EntityRef<E> {
    const def = this.#definition(target);
    checkEntityKey(key);
    const via = def.handlers === undefined ? def.type : def;
    return entityRef<E>(def, key, {
      ask: (h, args, o) => this.ask(via, key, h, args, o),
      tell: (h, args) => this.tell(via, key, h, args),
    });
  }

  /**
   * Asks entity `key` of `def` (a class, its definition, or a type name) to run handler `h`;
   * resolves with its result.
   */
  ask(
    def: EntityDefinition | EntityClass | string,
    key: string,
    h: string,
    args: readonly unknown[],
    o: AskOptions = {},
  ): Promise<unknown> {
    let d: EntityDefinition | TypeName;
    try {
      d = this.#definition(def);
      checkEntityKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (d.handlers === undefined) {
      return this.#router.ask(d.type, key, h, args, { timeout: o.timeout, signal: o.signal });
    }
    if (!d.handlers.has(h)) return Promise.reject(new UnknownHandlerError(d.type, h));
    if (this.#telemetry.on)
      return this.#telemetry.clientAsk(d.type, key, h, (headers) => this.#ask(d, key, h, args, o, headers));
    return this.#ask(d, key, h, args, o, undefined);
  }

  #ask(
    d: EntityDefinition,
    key: string,
    h: string,
    args: readonly unknown[],
    o: AskOptions,
    headers: MessageHeaders | undefined,
  ): Promise<unknown> {
    // The fast path: the entity lives here and its partition is served. No id, no copies.
    if (this.#host && o.signal === undefined && this.#closing === undefined) {
      const here = this.#host.dispatcher.askHere(d, key, h, args, o.timeout);
      if (here) return here;
    }
    // A client with the class checks the arguments before sending; the owner checks them again.
    if (!this.#host && d.schemas?.has(h)) {
      const type = d.type;
      return Promise.resolve()
        .then(() => validArgs(type, d.schemas, h, args))
        .then(() => this.#router.ask(type, key, h, args, { timeout: o.timeout, signal: o.signal, headers }));
    }
    return this.#router.ask(d.type, key, h, args, { timeout: o.timeout, signal: o.signal, headers });
  }

  /**
   * Sends handler `h` to entity `key` without waiting: at most once. Argument schemas run on
   * the owner only; a failure there is not reported, like any other.
   */
  tell(def: EntityDefinition | EntityClass | string, key: string, h: string, args: readonly unknown[]): void {
    const d = this.#definition(def);
    checkEntityKey(key);
    if (d.handlers && !d.handlers.has(h)) throw new UnknownHandlerError(d.type, h);
    this.#router.tell(d.type, key, h, args);
  }

  /**
   * The registered definition of a class, or a fresh one for a client addressing an unregistered
   * class; for a type name, its registered definition or just the name.
   */
  #definition(def: EntityDefinition | EntityClass | string): EntityDefinition | TypeName {
    if (typeof def === "string") {
      if (!ID_PATTERN.test(def)) {
        throw new InvalidRequestError(
          `Expected an entity type name of 1-64 letters, digits, \`_\` or \`-\`, got ${JSON.stringify(def.slice(0, 80))}`,
        );
      }
      return this.#defs.get(def) ?? { type: def, handlers: undefined };
    }
    if ("handlers" in def) return def;
    const known = this.#defs.get(def.type);
    if (known && known.cls !== def) {
      throw new InvalidEntityError(
        `Entity type ${JSON.stringify(def.type)} is registered here by class ${known.cls.name}, not ${def.name}`,
      );
    }
    return known ?? defineEntity(def);
  }

  /** @internal Handles one request that arrived on this node's subject. */
  handleRequest(data: Uint8Array, reply: string | undefined): void {
    this.#inbound.handle(data, reply);
  }

  /** Housekeeping every handoffTimeoutMs: unclaimed outboxes expire, orphaned replica copies go. */
  #armHousekeeping(): void {
    const every = this.#opts.handoffTimeoutMs;
    this.#housekeepingTimer = this.#clock.setTimeout(() => {
      this.#host?.outbox.expire(every * OUTBOX_RETENTION_FACTOR);
      this.#replicator?.prune();
      this.#armHousekeeping();
    }, every);
  }

  /** Counters of routing, hosting and hand-off. */
  stats(): ShardingStats {
    const h = this.#host;
    return {
      router: { ...this.#router.stats },
      host: { ...this.#hostStats, active: h?.lifecycle.activeCount ?? 0, known: h?.slots.count ?? 0 },
      handoff: { ...(h?.handoff.stats ?? emptyHandoffStats()), outbox: h?.outbox.size ?? 0 },
      replication: {
        ...(this.#replicator?.stats ?? emptyReplicationStats()),
        copies: this.#replicator?.copyCount ?? 0,
      },
      requests: { ...this.#inbound.stats },
      reminders: { ...(h?.reminders.stats ?? { pending: 0, fired: 0, deferred: 0, failed: 0 }) },
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
      const host = this.#host;
      // Asks this node sent finish first, while it is still a full member that can route.
      this.#router.stopAccepting();
      await this.#router.drain(this.#opts.askTimeoutMs);
      // Leave the ring but keep watching it, so the records go to owners our view can name.
      await this.node.leave();
      if (host) await this.#awaitHandover(host);
      await this.node.close();
      await this.#events;
      await host?.partitions.settled();
      this.#router.close();
      this.#clock.clearTimeout(this.#housekeepingTimer);
      host?.lifecycle.close();
      host?.reminders.close();
      this.#deadlines.close();
      this.#inbound.close();
      await this.#store?.close().catch(() => {});
      if (this.#ownsTransport) await this.#transport.close();
    })();
    return this.#closing;
  }

  /** Waits (up to handoffTimeoutMs) until the new owners took every partition's records. */
  async #awaitHandover(host: HostParts): Promise<void> {
    const { partitions, outbox } = host;
    const deadline = this.#clock.now() + this.#opts.handoffTimeoutMs;
    // Wait while someone is left to take the records; the last member has nobody to wait for.
    while (
      (partitions.heldCount > 0 || outbox.size > 0) &&
      this.node.members().length > 0 &&
      this.#clock.now() < deadline
    ) {
      await sleep(this.#clock, 10);
    }
    await partitions.settled();
    if (outbox.size > 0) {
      this.#logger.warn(
        this.node.members().length === 0
          ? `node ${this.node.id}: closing as the last member; the state of ${outbox.size} partitions is dropped`
          : `node ${this.node.id}: closing with ${outbox.size} partitions not taken by a new owner within ${this.#opts.handoffTimeoutMs} ms`,
      );
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
