// Starts a cluster of real nats-server processes on random loopback ports, routed to each other,
// so tests can kill and restart single members.
import { request } from "node:http";
import { join } from "node:path";
import { deepMerge, NatsServer, type NatsServerOptions } from "./nats-server.js";
import { waitFor } from "./wait-for.js";

const CLUSTER_NAME = "kh";

export class NatsCluster implements AsyncDisposable {
  readonly #servers: readonly NatsServer[];
  #closing: Promise<void> | undefined;

  private constructor(servers: readonly NatsServer[]) {
    this.#servers = servers;
  }

  /**
   * Starts `size` servers one after another. Ports are random, so a member can only route to
   * members that already run: each one gets routes to all earlier ones, and nats-server's gossip
   * completes the full mesh.
   */
  static async start(size = 3, opts: NatsServerOptions = {}): Promise<NatsCluster> {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`cluster size must be >= 1, got ${size}`);
    const servers: NatsServer[] = [];
    try {
      for (let i = 0; i < size; i++) {
        const cluster: Record<string, unknown> = { name: CLUSTER_NAME, listen: "127.0.0.1:-1" };
        if (i > 0) cluster.routes = servers.map(routeUrl);
        // JetStream in a cluster refuses to start without server_name; it also reads well in logs.
        const config = deepMerge({ server_name: `${CLUSTER_NAME}-${i}`, cluster }, opts.config ?? {});
        if (opts.jetstream && i === 0) {
          servers.push(await startFirstJetStreamMember({ ...opts, config }));
        } else {
          servers.push(await NatsServer.start({ ...opts, config }));
        }
      }
    } catch (err) {
      await Promise.allSettled(servers.map((s) => s.close()));
      throw err;
    }
    return new NatsCluster(servers);
  }

  get servers(): readonly NatsServer[] {
    return this.#servers;
  }

  /** Client URLs of all members, in member order. */
  get urls(): string[] {
    return this.#servers.map((s) => s.url);
  }

  stop(i: number): Promise<void> {
    return this.#at(i).stop();
  }

  kill(i: number): Promise<void> {
    return this.#at(i).kill();
  }

  /** Restarts member `i` on its old ports, with routes to every other member's (fixed) cluster port. */
  restart(i: number): Promise<void> {
    const server = this.#at(i);
    const others = this.#servers.filter((s) => s !== server);
    // A lone member routes to itself: nats-server drops the self-route, but JetStream's
    // "cluster needs routes" check is satisfied.
    const routes = (others.length > 0 ? others : [server]).map(routeUrl);
    return server.restart({ cluster: { routes } });
  }

  /**
   * Resolves once every running member has a route to every other running member, judged by
   * server ids in each one's /routez (a stopped member is not expected to be routed).
   */
  async waitForRoutes({ timeout = 10_000 }: { timeout?: number } = {}): Promise<void> {
    let last = "";
    await waitFor(
      async () => {
        const running = this.#servers.filter((s) => s.running);
        const views = await Promise.all(running.map((s) => getJson(`${s.monitorUrl}/routez`)));
        const ids = views.map((v) => v.server_id);
        last = running
          .map((s, n) => `${s.url} routes=${views[n]?.routes?.length ?? 0}/${running.length - 1}`)
          .join(", ");
        return views.every((v) => {
          const remotes = new Set((v.routes ?? []).map((r) => r.remote_id));
          return ids.every((id) => id === v.server_id || remotes.has(id));
        });
      },
      { timeout, message: `cluster routes not established within ${timeout} ms` },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message} (${last})`, { cause: err });
    });
  }

  /** Kills every member and removes their temp dirs. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= Promise.allSettled(this.#servers.map((s) => s.close())).then(() => undefined);
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #at(i: number): NatsServer {
    const server = this.#servers[i];
    if (server === undefined) throw new RangeError(`no cluster member ${i} (size ${this.#servers.length})`);
    return server;
  }
}

/**
 * JetStream in a cluster refuses to start without configured routes, and the first member has no
 * one to route to yet. So it runs once without JetStream to be assigned its ports, then restarts
 * with JetStream and a route to its own (now fixed) cluster port.
 */
async function startFirstJetStreamMember(opts: NatsServerOptions): Promise<NatsServer> {
  const server = await NatsServer.start({ ...opts, jetstream: false });
  try {
    await server.restart({
      jetstream: { store_dir: join(server.dir, "js") },
      cluster: { routes: [routeUrl(server)] },
    });
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}

function routeUrl(server: NatsServer): string {
  return `nats-route://127.0.0.1:${server.clusterPort}`;
}

interface Routez {
  server_id: string;
  routes?: { remote_id: string }[];
}

/** GETs a monitoring endpoint and parses its JSON (also used by ProxiedNatsCluster). */
export function getJson<T = Routez>(url: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 2_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => {
        try {
          if (res.statusCode !== 200) throw new Error(`GET ${url}: HTTP ${res.statusCode}`);
          resolve(JSON.parse(body) as T);
        } catch (err) {
          reject(err);
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}
