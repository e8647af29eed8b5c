// Where a TestCluster's nodes connect: the simulated bus (virtual clock) or a nats-server,
// embedded or given by URL (real time). The cluster above is the same for both.
import { type Clock, NatsTransport, systemClock, type Transport } from "@keyhold/core";
import { connect } from "@nats-io/transport-node";
import { NatsServer } from "./nats-server.js";
import type { SimBus, SimEndpoint } from "./sim-bus.js";

export interface Backend {
  readonly clock: Clock;
  connect(name: string): Promise<Transport>;
  /** Cuts a crashed node's connection the way a dead process's socket closes. */
  kill(transport: Transport): Promise<void>;
  close(): Promise<void>;
}

export function simBackend(bus: SimBus): Backend {
  return {
    clock: bus.clock,
    connect: async (name) => bus.connect(name),
    kill: (t) => (t as SimEndpoint).close(),
    close: async () => {},
  };
}

/** Starts an embedded nats-server unless `url` names a running one. */
export async function natsBackend(url: string | undefined): Promise<Backend> {
  const server = url === undefined ? await NatsServer.start() : undefined;
  const servers = url ?? (server as NatsServer).url;
  return {
    clock: systemClock,
    connect: async (name) => new NatsTransport(await connect({ servers, name }), { owned: true }),
    kill: async (t) => {
      await (t as NatsTransport).connection.close();
    },
    close: async () => {
      await server?.close();
    },
  };
}
