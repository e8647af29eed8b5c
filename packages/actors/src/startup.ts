// Starting a Sharding: validates the options, opens the connection (start-up buffer listening
// first), the store and the epoch source, starts the ShardNode, builds the router, batcher,
// replicator and hosting parts, and wires them one way — inbound request → dispatch → mailbox →
// handler → durability → reply. The facade (sharding.ts) gets the parts ready to use.
import {
  type Clock,
  consoleLogger,
  Deadlines,
  type Logger,
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
import { CopyBatcher } from "./copy-batch.js";
import { DedupeCache } from "./dedupe.js";
import { type EpochSource, localEpochs, openEpochs } from "./epochs.js";
import { emptyHostStats, type HostStats } from "./handler.js";
import { HandoffLog } from "./handoff-log.js";
import { buildHost, type HostParts } from "./host.js";
import { Housekeeping } from "./housekeeping.js";
import { Inbound } from "./inbound.js";
import { dormantCopyExpired } from "./lifecycle.js";
import { type ParsedShardingOptions, parseShardingOptions, type ShardingOptions } from "./options.js";
import { EntityRegistry } from "./registry.js";
import { Replicator } from "./replication.js";
import { Router } from "./router.js";
import type { Sharding } from "./sharding.js";
import type { StateStore } from "./store.js";
import { Telemetry } from "./telemetry.js";
import { TurnGuard } from "./turn-guard.js";
import { ACTOR_PROTOCOL, nodeSubject } from "./wire.js";

/** Everything a started Sharding holds; the hosting parts, replicator and housekeeping only on a node. */
export interface ShardingParts {
  readonly node: ShardNode;
  readonly client: boolean;
  readonly opts: ParsedShardingOptions;
  readonly registry: EntityRegistry;
  readonly transport: Transport;
  readonly ownsTransport: boolean;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly store: StateStore | undefined;
  readonly inbound: Inbound;
  readonly telemetry: Telemetry;
  readonly deadlines: Deadlines;
  readonly handoffs: HandoffLog;
  readonly hostStats: HostStats;
  readonly replicator: Replicator | undefined;
  readonly batcher: Batcher;
  readonly router: Router;
  readonly host: HostParts | undefined;
  /** Gives the event loop a turn during a flood of local asks (turn-guard.ts). */
  readonly turns: TurnGuard;
  readonly housekeeping: Housekeeping | undefined;
  /** The hand-off loop following ownership events; settles once the node closed. */
  readonly events: Promise<void> | undefined;
}

/** What buildParts works from: the node, connection, store and epochs startSharding opened. */
interface Connected {
  readonly node: ShardNode;
  readonly client: boolean;
  readonly opts: ParsedShardingOptions;
  readonly registry: EntityRegistry;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly store: StateStore | undefined;
  readonly epochs: EpochSource | undefined;
  readonly telemetry: Telemetry;
}

/** Builds the router, batcher, replicator and (on a node) the hosting parts and housekeeping. */
function buildParts(c: Connected) {
  const { node, opts, registry, clock, logger, transport, client, store, telemetry } = c;
  const deadlines = new Deadlines(clock);
  const handoffs = new HandoffLog(clock);
  const hostStats = emptyHostStats();
  const cluster = node.cluster;
  const nodeId = node.id;
  let replicator: Replicator | undefined;
  if (!client && registry.replicated) {
    replicator = new Replicator({
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
      dormant: store ? (at, now) => dormantCopyExpired(at, now, opts.idleMs) : undefined,
      copies: new CopyBatcher({
        transport,
        timeoutMs: opts.replicationTimeoutMs,
        maxEntries: opts.batchMaxEntries,
        leaseValid: () => node.leaseValid(),
      }),
    });
  }
  const batcher = new Batcher({ transport, clock, deadlines, logger, maxEntries: opts.batchMaxEntries });
  let host: HostParts | undefined;
  // A flood of local asks must not starve the heartbeat (turn-guard.ts): a turn at least every
  // quarter heartbeat, and never more than 50 ms without one.
  const turns = new TurnGuard(Math.min(50, node.config.heartbeatMs / 4));
  const router = new Router({
    node,
    transport,
    cluster,
    clock,
    batcher,
    deadlines,
    askTimeoutMs: opts.askTimeoutMs,
    attemptTimeoutMs: opts.attemptTimeoutMs,
    local: client
      ? undefined
      : (t, k, h, a, done) => {
          if (turns.pass()) host!.dispatcher.dispatch(t, k, h, a, done);
          else turns.defer(() => host!.dispatcher.dispatch(t, k, h, a, done));
        },
  });
  let housekeeping: Housekeeping | undefined;
  if (!client) {
    host = buildHost({
      node,
      opts,
      defs: registry.types,
      transport,
      clock,
      logger,
      stats: hostStats,
      store,
      replicator,
      deadlines,
      telemetry,
      reroute: (t, k, h, a, timeout) => router.ask(t, k, h, a, { timeout, accepted: true }),
      epochs: c.epochs ?? localEpochs(clock),
      onHandoff: (info) => {
        handoffs.record(info);
        if (telemetry.on) telemetry.handoff(info);
      },
    });
    housekeeping = new Housekeeping({
      clock,
      everyMs: opts.handoffTimeoutMs,
      outbox: host.outbox,
      replicator,
      background: host.background,
    });
  }
  return { deadlines, handoffs, hostStats, replicator, batcher, router, host, turns, housekeeping };
}

/**
 * Starts a node (or, with `client`, a client that hosts nothing) and returns the facade
 * `facade` builds from its parts. On failure closes what it opened and rethrows.
 */
export async function startSharding(
  options: ShardingOptions,
  client: boolean,
  facade: (parts: ShardingParts) => Sharding,
): Promise<Sharding> {
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
    // The join-time config check compares the epoch source too: KV revisions and local stamps
    // (wall-clock sized) cannot be compared, so a node of the other mode is refused.
    const node = await ShardNode.start(
      epochs ? { ...nodeOptions, fencingTokens: String(epochs.kind).slice(0, 64) || "custom" } : nodeOptions,
    );
    const connected = { node, client, opts, registry, transport, clock, logger, store, epochs, telemetry };
    const built = buildParts(connected);
    const { host } = built;
    const events = host?.handoff.follow();
    built.housekeeping?.start();
    const sharding = facade({ ...connected, ...built, ownsTransport: owned, inbound, events });
    if (host) node.admin?.extend(actorsAdmin(sharding, host));
    if (telemetry.on)
      telemetry.observe({ node, stats: () => sharding.stats(), census: () => host?.slots.census() });
    inbound.serve({
      nodeId,
      clock,
      dispatcher: host?.dispatcher,
      replicator: built.replicator,
      router: built.router,
      batcher: built.batcher,
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
