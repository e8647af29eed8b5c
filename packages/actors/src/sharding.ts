// Sharding: the public facade of @keyhold/actors. Starts a node that hosts entity types (or a
// client that hosts nothing), builds the node's parts and wires them one way — inbound request
// → dispatch (the ownership check) → mailbox → handler → durability → reply — and offers ref,
// ask, tell, stats and close. Where each part lives: docs/concepts/entities.md.
import {
  type Clock,
  consoleLogger,
  Deadlines,
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
import { Batcher } from "./batch.js";
import { nodeOptionsOf, openTransport } from "./connection.js";
import { DedupeCache } from "./dedupe.js";
import {
  type AskOptions,
  checkEntityKey,
  type Entity,
  type EntityClass,
  type EntityDefinition,
  type EntityRef,
  entityRef,
  type TypeName,
} from "./entity.js";
import { type EpochSource, localEpochs, openEpochs } from "./epochs.js";
import { UnknownHandlerError } from "./errors.js";
import { emptyHostStats } from "./handler.js";
import { type HandoffInfo, HandoffLog } from "./handoff-log.js";
import { buildHost, type HostParts } from "./host.js";
import { Housekeeping } from "./housekeeping.js";
import { Inbound } from "./inbound.js";
import { awaitHandover } from "./leave.js";
import { dormantCopyExpired } from "./lifecycle.js";
import { type ParsedShardingOptions, parseShardingOptions, type ShardingOptions } from "./options.js";
import { EntityRegistry } from "./registry.js";
import { Replicator } from "./replication.js";
import { Router } from "./router.js";
import { validArgs } from "./schema.js";
import { type ShardingStats, shardingStats } from "./stats.js";
import type { StateStore } from "./store.js";
import { Telemetry } from "./telemetry.js";
import { ACTOR_PROTOCOL, nodeSubject } from "./wire.js";

export type { HandoffInfo } from "./handoff-log.js";
export type { ShardingStats } from "./stats.js";

export class Sharding implements AsyncDisposable {
  /** The membership and placement node underneath. */
  readonly node: ShardNode;
  /** True for a client from Sharding.connect (hosts nothing). */
  readonly client: boolean;
  readonly #opts: ParsedShardingOptions;
  readonly #registry: EntityRegistry;
  readonly #transport: Transport;
  readonly #ownsTransport: boolean;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #router: Router;
  readonly #batcher: Batcher;
  readonly #host: HostParts | undefined;
  readonly #hostStats = emptyHostStats();
  readonly #deadlines: Deadlines;
  readonly #inbound: Inbound;
  readonly #store: StateStore | undefined;
  readonly #replicator: Replicator | undefined;
  readonly #handoffs: HandoffLog;
  readonly #telemetry: Telemetry;
  #events: Promise<void> | undefined;
  readonly #housekeeping: Housekeeping | undefined;
  #closing: Promise<void> | undefined;

  private constructor(args: {
    node: ShardNode;
    client: boolean;
    opts: ParsedShardingOptions;
    registry: EntityRegistry;
    transport: Transport;
    ownsTransport: boolean;
    clock: Clock;
    logger: Logger;
    store: StateStore | undefined;
    epochs: EpochSource | undefined;
    inbound: Inbound;
    telemetry: Telemetry;
  }) {
    const { node, opts, registry, clock, logger, transport } = args;
    this.node = node;
    this.#store = args.store;
    this.client = args.client;
    this.#opts = opts;
    this.#registry = registry;
    this.#transport = transport;
    this.#ownsTransport = args.ownsTransport;
    this.#clock = clock;
    this.#logger = logger;
    this.#inbound = args.inbound;
    this.#telemetry = args.telemetry;
    this.#deadlines = new Deadlines(clock);
    this.#handoffs = new HandoffLog(clock);
    const cluster = node.cluster;
    const nodeId = node.id;
    if (!args.client && registry.replicated) {
      this.#replicator = new Replicator({
        node,
        transport,
        cluster,
        nodeId,
        clock,
        logger,
        timeoutMs: opts.replicationTimeoutMs,
        quorum: opts.writeQuorum,
        replicasOf: (t) => registry.replicasOf(t),
        orphanGraceMs: opts.handoffTimeoutMs * 2,
        dormant: args.store ? (at, now) => dormantCopyExpired(at, now, opts.idleMs) : undefined,
      });
    }
    this.#batcher = new Batcher({
      transport,
      clock,
      deadlines: this.#deadlines,
      logger,
      maxEntries: opts.batchMaxEntries,
    });
    this.#router = new Router({
      node,
      transport,
      cluster,
      clock,
      batcher: this.#batcher,
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
        defs: registry.types,
        transport,
        clock,
        logger,
        stats: this.#hostStats,
        store: args.store,
        replicator: this.#replicator,
        deadlines: this.#deadlines,
        telemetry: args.telemetry,
        reroute: (t, k, h, a, timeout) => this.#router.ask(t, k, h, a, { timeout, accepted: true }),
        epochs: args.epochs ?? localEpochs(clock),
        onHandoff: (info) => {
          this.#handoffs.record(info);
          if (args.telemetry.on) args.telemetry.handoff(info);
        },
      });
      const { outbox } = this.#host;
      this.#housekeeping = new Housekeeping({
        clock,
        everyMs: opts.handoffTimeoutMs,
        outbox,
        replicator: this.#replicator,
        background: this.#host.background,
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
    const registry = EntityRegistry.of(opts.entities, client);
    const nodeId = options.nodeId ?? uuidv4().replaceAll("-", "");
    const { transport, owned } = await openTransport(options, nodeId, client);
    const nodeOptions: ShardNodeOptions = {
      ...nodeOptionsOf(options),
      // A leaver answers pulls for up to handoffTimeoutMs; joiners must learn of it that long.
      tombstoneMs: Math.max(options.tombstoneMs ?? 0, config.ttlMs + config.skewMs + opts.handoffTimeoutMs),
      nodeId,
      transport,
      observer: client,
      protocol: ACTOR_PROTOCOL,
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
        registry,
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
        sharding.#housekeeping?.start();
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
        batcher: sharding.#batcher,
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
    const def = this.#registry.resolve(target);
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
      d = this.#registry.resolve(def);
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
    const d = this.#registry.resolve(def);
    checkEntityKey(key);
    if (d.handlers && !d.handlers.has(h)) throw new UnknownHandlerError(d.type, h);
    this.#router.tell(d.type, key, h, args);
  }

  /** @internal Handles one request that arrived on this node's subject. */
  handleRequest(data: Uint8Array, reply: string | undefined): void {
    this.#inbound.handle(data, reply);
  }

  /** Counters of routing, hosting and hand-off. */
  stats(): ShardingStats {
    return shardingStats({
      router: this.#router.stats,
      batches: this.#batcher.stats,
      hostStats: this.#hostStats,
      host: this.#host,
      replicator: this.#replicator,
      requests: this.#inbound.stats,
    });
  }

  /** Completed hand-offs (acquire to serving), oldest first; the last 10,000. */
  handoffs(): readonly HandoffInfo[] {
    return this.#handoffs.entries;
  }

  /**
   * Leaves gracefully: refuses new asks and waits for those under way, announces the leave,
   * lets queued messages finish, passivates every
   * entity and keeps answering until the new owners have pulled their state (or
   * `handoffTimeoutMs` passed), then disconnects. A local ask accepted before the close whose
   * entity moves away meanwhile is sent on to its new owner. Asks still retrying here at the
   * end fail with ShardingClosedError. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const host = this.#host;
      // Asks this node sent finish first, while it is still a full member that can route.
      this.#router.stopAccepting();
      await this.#router.drain(this.#opts.askTimeoutMs);
      // Leave the ring but keep watching it, so the records go to owners our view can name.
      await this.node.leave();
      if (host) {
        const { node } = this;
        await awaitHandover({
          host,
          node,
          clock: this.#clock,
          logger: this.#logger,
          timeoutMs: this.#opts.handoffTimeoutMs,
        });
      }
      // Local asks accepted before the close whose entity moved meanwhile were sent on to the
      // new owners: let them finish while the connection is still up.
      await this.#router.drain(this.#opts.handoffTimeoutMs);
      await this.node.close();
      await this.#events;
      await host?.partitions.settled();
      // Background work still queued or running gets the hand-over's deadline, then is dropped.
      await host?.background.close(this.#clock, this.#opts.handoffTimeoutMs);
      this.#router.close();
      this.#housekeeping?.close();
      host?.lifecycle.close();
      host?.reminders.close();
      this.#deadlines.close();
      this.#inbound.close();
      this.#batcher.flush(); // replies already queued still leave
      this.#batcher.close();
      await this.#store?.close().catch(() => {});
      if (this.#ownsTransport) await this.#transport.close();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
