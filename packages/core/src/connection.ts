// The one way Keyhold opens a NATS connection from `servers`: ShardNode and Sharding both call
// it, so reconnect policy and connection settings cannot drift apart between the layers.
import type { ConnectionOptions, NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";

/** Opens a connection named after the cluster and member; `natsOptions` override the defaults. */
export function connectNats(opts: {
  readonly servers: string | readonly string[];
  readonly cluster: string;
  readonly nodeId: string;
  readonly natsOptions?: Partial<ConnectionOptions> | undefined;
}): Promise<NatsConnection> {
  return connect({
    servers: typeof opts.servers === "string" ? [opts.servers] : [...opts.servers],
    name: `keyhold-${opts.cluster}-${opts.nodeId}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    // Keyhold wraps every request failure in its own errors, so nats.js's async stack traces
    // (two Error objects per request) would be pure cost.
    noAsyncTraces: true,
    ...opts.natsOptions,
  });
}
