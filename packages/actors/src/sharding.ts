// Sharding: the public facade of @keyhold/actors. Starts a node that hosts entity types (or a
// client that hosts nothing; the parts are opened and wired in startup.ts) and offers ref, ask,
// tell, stats, handoffs and close. Where each part lives: docs/concepts/entities.md.
import type { Clock, Deadlines, Logger, MessageHeaders, ShardNode, Transport } from "@keyhold/core";
import type { Batcher } from "./batch.js";
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
import { UnknownHandlerError } from "./errors.js";
import type { HostStats } from "./handler.js";
import type { HandoffInfo, HandoffLog } from "./handoff-log.js";
import type { HostParts } from "./host.js";
import type { Housekeeping } from "./housekeeping.js";
import type { Inbound } from "./inbound.js";
import { awaitHandover, releaseStepwise } from "./leave.js";
import type { ParsedShardingOptions, ShardingOptions } from "./options.js";
import type { EntityRegistry } from "./registry.js";
import type { Replicator } from "./replication.js";
import type { Router } from "./router.js";
import { validArgs } from "./schema.js";
import { type ShardingParts, startSharding } from "./startup.js";
import { type ShardingStats, shardingStats } from "./stats.js";
import type { StateStore } from "./store.js";
import type { Telemetry } from "./telemetry.js";

export type { HandoffInfo } from "./handoff-log.js";
export type { ShardingStats } from "./stats.js";

/** The options of an ask made without any (shared: nothing reads more than timeout and signal). */
const NO_OPTIONS: AskOptions = Object.freeze({});

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
  readonly #hostStats: HostStats;
  readonly #deadlines: Deadlines;
  readonly #inbound: Inbound;
  readonly #store: StateStore | undefined;
  readonly #replicator: Replicator | undefined;
  readonly #handoffs: HandoffLog;
  readonly #telemetry: Telemetry;
  readonly #events: Promise<void> | undefined;
  readonly #housekeeping: Housekeeping | undefined;
  #closing: Promise<void> | undefined;
  /** The registered class `ask` resolved last, and its definition. */
  #lastClass: EntityClass | undefined;
  #lastDef: EntityDefinition | undefined;

  private constructor(p: ShardingParts) {
    this.node = p.node;
    this.client = p.client;
    this.#opts = p.opts;
    this.#registry = p.registry;
    this.#transport = p.transport;
    this.#ownsTransport = p.ownsTransport;
    this.#clock = p.clock;
    this.#logger = p.logger;
    this.#router = p.router;
    this.#batcher = p.batcher;
    this.#host = p.host;
    this.#hostStats = p.hostStats;
    this.#deadlines = p.deadlines;
    this.#inbound = p.inbound;
    this.#store = p.store;
    this.#replicator = p.replicator;
    this.#handoffs = p.handoffs;
    this.#telemetry = p.telemetry;
    this.#events = p.events;
    this.#housekeeping = p.housekeeping;
  }

  /** Starts a node that hosts `entities`, joins the ring and takes over its partitions. */
  static start(options: ShardingOptions): Promise<Sharding> {
    return startSharding(options, false, (p) => new Sharding(p));
  }

  /** Connects a client that sends to entities by key and hosts nothing (an observer of the ring). */
  static connect(options: ShardingOptions): Promise<Sharding> {
    return startSharding(options, true, (p) => new Sharding(p));
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
    o: AskOptions = NO_OPTIONS,
  ): Promise<unknown> {
    let d: EntityDefinition | TypeName;
    try {
      // The class asked last resolves to its registered definition again (the registry is fixed
      // at start): one comparison instead of a lookup and its checks.
      if (def === this.#lastClass && def !== undefined) d = this.#lastDef!;
      else {
        d = this.#registry.resolve(def);
        if (typeof def === "function" && d.handlers !== undefined && this.#registry.types.get(d.type) === d) {
          this.#lastClass = def;
          this.#lastDef = d;
        }
      }
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
    // The fast path: the entity lives here and its partition is served. No id, no copies. (The
    // dispatcher gives the event loop a turn during a flood of these: turn-guard.ts.)
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
    // Without options or headers (most asks), no object of options is made per ask.
    if (o === NO_OPTIONS && headers === undefined) return this.#router.ask(d.type, key, h, args, NO_OPTIONS);
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
      // With joinStepPartitions, give the partitions up a few at a time first (leave.ts).
      if (host) {
        const timeoutMs = this.#opts.handoffTimeoutMs;
        await releaseStepwise({ host, node: this.node, clock: this.#clock, timeoutMs });
      }
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
