// How a Sharding reaches NATS: the caller's transport or connection, or one it opens through
// core's connectNats (the same connect ShardNode uses). Sharding owns the connection rather
// than its ShardNode: a closing node must keep answering hand-off pulls after it left the ring.
import {
  connectNats,
  NatsTransport,
  parseShardNodeOptions,
  type ShardNodeOptions,
  type Transport,
} from "@keyhold/core";
import type { ShardingOptions } from "./options.js";

/** The ShardNode options, without the actor-level ones. */
export function nodeOptionsOf(o: ShardingOptions): Omit<ShardNodeOptions, "cluster"> & { cluster: string } {
  const {
    entities: _e,
    askTimeoutMs: _a,
    attemptTimeoutMs: _t,
    mailboxSize: _m,
    batchMaxEntries: _b,
    concurrency: _c,
    idleMs: _i,
    maxActive: _x,
    handoffTimeoutMs: _h,
    dedupeWindowMs: _d,
    dedupeMaxEntries: _n,
    store: _st,
    writeQuorum: _wq,
    replicationTimeoutMs: _rt,
    onAck: _ack,
    servers: _s,
    connection: _cn,
    natsOptions: _no,
    telemetry: _tel,
    ...rest
  } = o;
  return rest;
}

/**
 * Validates the connection options like ShardNode does (exactly one way to reach NATS), then
 * returns the transport to use and whether this Sharding must close it.
 */
export async function openTransport(
  options: ShardingOptions,
  nodeId: string,
  observer: boolean,
): Promise<{ transport: Transport; owned: boolean }> {
  parseShardNodeOptions({
    ...nodeOptionsOf(options),
    ...(options.servers !== undefined ? { servers: options.servers } : {}),
    ...(options.connection !== undefined ? { connection: options.connection } : {}),
    ...(options.natsOptions !== undefined ? { natsOptions: options.natsOptions } : {}),
    nodeId,
    observer,
  });
  if (options.transport) return { transport: options.transport, owned: false };
  if (options.connection)
    return { transport: new NatsTransport(options.connection, { owned: false }), owned: false };
  const nc = await connectNats({
    servers: options.servers ?? [],
    cluster: options.cluster,
    nodeId,
    natsOptions: options.natsOptions,
  });
  return { transport: new NatsTransport(nc, { owned: true }), owned: true };
}
