// A cluster of real nats-server processes whose every route, and every client link, runs through
// a FaultProxy, so a test can cut, blackhole or delay any one link and partition the cluster.
import { createServer } from "node:net";
import { InvalidOptionError } from "@keyhold/core";
import { FaultProxy } from "./fault-proxy.js";
import { getJson } from "./nats-cluster.js";
import { deepMerge, NatsServer } from "./nats-server.js";
import { waitFor } from "./wait-for.js";

export interface ProxiedNatsClusterOptions {
  /** Number of servers, >= 2. @default 3 */
  readonly size?: number;
  /** JetStream on every server (clustered: server names, one cluster name, own store dirs). @default false */
  readonly jetstream?: boolean;
  /**
   * How often servers ping their routes and clients; a blackholed link is noticed after about
   * `pingMax` missed pings. nats-server's own default is 2 minutes, too slow for a test.
   * @default 1000
   */
  readonly pingIntervalMs?: number;
  /** Missed pings before a link is closed. @default 3 */
  readonly pingMax?: number;
  /** Extra configuration deep-merged into every server's (the route settings are overridden). */
  readonly config?: Record<string, unknown>;
  /** Server debug logs echoed to stderr. @default false */
  readonly debug?: boolean;
  /** Cluster name (JetStream's meta group is per cluster). @default "khp" */
  readonly name?: string;
}

export const DEFAULT_PROXIED_PING_INTERVAL_MS = 1_000;
export const DEFAULT_PROXIED_PING_MAX = 3;
const START_ATTEMPTS = 3;

interface Routez {
  server_id: string;
  routes?: { remote_id: string }[];
}

/**
 * How route-around is prevented. nats-server builds a full mesh by gossip: when a route
 * forms, each server tells its other routes the new peer's *advertised* cluster URL, and they
 * dial it directly (an implicit route). Here:
 * - each pair (i, j), i < j, has one proxy, and only server i dials j, through that proxy
 *   (explicit routes, retried for ever);
 * - every server advertises the URL of a trap: a proxy that is always cut. Implicit routes
 *   aimed at it are reset at once, and nats-server does not retry implicit routes
 *   (`connect_retries` 0), so the only routes that ever exist are the proxied ones;
 * - `no_advertise` keeps servers from telling clients the other servers' client URLs, so a
 *   client only ever reconnects through its own client proxy.
 * `routeAroundAttempts` counts the implicit routes the trap turned away.
 */
export class ProxiedNatsCluster implements AsyncDisposable {
  readonly #servers: readonly NatsServer[];
  readonly #routeLinks: ReadonlyMap<string, FaultProxy>;
  readonly #clientLinks: readonly FaultProxy[];
  readonly #trap: FaultProxy;
  #closing: Promise<void> | undefined;

  private constructor(
    servers: readonly NatsServer[],
    routeLinks: ReadonlyMap<string, FaultProxy>,
    clientLinks: readonly FaultProxy[],
    trap: FaultProxy,
  ) {
    this.#servers = servers;
    this.#routeLinks = routeLinks;
    this.#clientLinks = clientLinks;
    this.#trap = trap;
  }

  /**
   * Starts the proxies and the servers, and resolves once the full mesh of proxied routes is up.
   * The cluster ports are chosen before any server starts (the proxies must know them), so
   * another process may take one in between: a start that fails on a port in use is retried on
   * new ports, up to three times.
   */
  static async start(options: ProxiedNatsClusterOptions = {}): Promise<ProxiedNatsCluster> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await ProxiedNatsCluster.#startOnce(options);
      } catch (err) {
        const inUse = err instanceof Error && /address already in use/i.test(err.message);
        if (!inUse || attempt >= START_ATTEMPTS) throw err;
      }
    }
  }

  static async #startOnce(options: ProxiedNatsClusterOptions): Promise<ProxiedNatsCluster> {
    const size = options.size ?? 3;
    if (!Number.isInteger(size) || size < 2) throw new InvalidOptionError("size", "an integer >= 2", size);
    const pingMs = options.pingIntervalMs ?? DEFAULT_PROXIED_PING_INTERVAL_MS;
    if (!Number.isInteger(pingMs) || pingMs < 100)
      throw new InvalidOptionError("pingIntervalMs", "an integer >= 100", pingMs);
    const pingMax = options.pingMax ?? DEFAULT_PROXIED_PING_MAX;
    if (!Number.isInteger(pingMax) || pingMax < 1)
      throw new InvalidOptionError("pingMax", "an integer >= 1", pingMax);
    const name = options.name ?? "khp";

    const proxies: FaultProxy[] = [];
    const servers: NatsServer[] = [];
    try {
      const clusterPorts: number[] = [];
      for (let i = 0; i < size; i++) clusterPorts.push(await freePort());
      const trap = await FaultProxy.start({ targetPort: clusterPorts[0] as number, name: "gossip-trap" });
      proxies.push(trap);
      trap.cut();
      const routeLinks = new Map<string, FaultProxy>();
      for (let i = 0; i < size; i++) {
        for (let j = i + 1; j < size; j++) {
          const p = await FaultProxy.start({
            targetPort: clusterPorts[j] as number,
            name: `route ${i}->${j}`,
          });
          proxies.push(p);
          routeLinks.set(linkKey(i, j), p);
        }
      }
      const starts = await Promise.allSettled(
        clusterPorts.map((port, i) => {
          const routes: string[] = [];
          for (let j = i + 1; j < size; j++)
            routes.push((routeLinks.get(linkKey(i, j)) as FaultProxy).routeUrl);
          // The last server dials no one; JetStream refuses a cluster member without routes, and
          // nats-server drops a route to itself, so a self-route satisfies it.
          if (routes.length === 0) routes.push(`nats-route://127.0.0.1:${port}`);
          const config = deepMerge(
            {
              server_name: `${name}-${i}`,
              ping_interval: `${pingMs}ms`,
              ping_max: pingMax,
            },
            options.config ?? {},
          );
          const cluster = {
            name,
            listen: `127.0.0.1:${port}`,
            routes,
            advertise: `127.0.0.1:${trap.port}`,
            no_advertise: true,
            connect_retries: 0,
          };
          return NatsServer.start({
            ...(options.jetstream ? { jetstream: true } : {}),
            ...(options.debug ? { debug: true } : {}),
            config: { ...config, cluster },
          });
        }),
      );
      // Every server that did start is closed by the catch below if another failed.
      for (const r of starts) if (r.status === "fulfilled") servers.push(r.value);
      const failed = starts.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
      const clientLinks: FaultProxy[] = [];
      for (const [i, s] of servers.entries()) {
        const p = await FaultProxy.start({ targetPort: s.port, name: `client ${i}` });
        proxies.push(p);
        clientLinks.push(p);
      }
      const cluster = new ProxiedNatsCluster(servers, routeLinks, clientLinks, trap);
      await cluster.waitForRoutes({ timeout: 20_000 });
      return cluster;
    } catch (err) {
      await Promise.allSettled([...servers.map((s) => s.close()), ...proxies.map((p) => p.close())]);
      throw err;
    }
  }

  get size(): number {
    return this.#servers.length;
  }

  get servers(): readonly NatsServer[] {
    return this.#servers;
  }

  /** Client URLs through each server's client proxy, in server order. Use these in tests. */
  get urls(): string[] {
    return this.#clientLinks.map((p) => p.url);
  }

  /** Client URLs straight to each server (for an observer that must not be cut off). */
  get directUrls(): string[] {
    return this.#servers.map((s) => s.url);
  }

  /** The proxy between clients and server `i`. */
  clientLink(i: number): FaultProxy {
    this.#index(i);
    return this.#clientLinks[i] as FaultProxy;
  }

  /** The proxy carrying the route between servers `i` and `j` (either order). */
  routeLink(i: number, j: number): FaultProxy {
    this.#index(i);
    this.#index(j);
    if (i === j) throw new RangeError(`a route links two different servers, got ${i} and ${j}`);
    return this.#routeLinks.get(linkKey(Math.min(i, j), Math.max(i, j))) as FaultProxy;
  }

  /** Every route proxy that touches server `i`. */
  routeLinksOf(i: number): FaultProxy[] {
    this.#index(i);
    return this.#servers.flatMap((_, j) => (j === i ? [] : [this.routeLink(i, j)]));
  }

  /**
   * Partitions server `i` from the other servers: its routes are cut (reset, the default) or
   * blackholed (open but silent until the servers' pings give up). Its client link is untouched.
   */
  isolate(i: number, fault: "cut" | "blackhole" = "cut"): void {
    if (fault !== "cut" && fault !== "blackhole")
      throw new InvalidOptionError("fault", '"cut" or "blackhole"', fault);
    for (const p of this.routeLinksOf(i)) {
      if (fault === "cut") p.cut();
      else p.blackhole();
    }
  }

  /** Heals every route and client proxy. */
  heal(): void {
    for (const p of [...this.#routeLinks.values(), ...this.#clientLinks]) p.heal();
  }

  /** Implicit routes the gossip trap turned away (each would have bypassed a proxy). */
  get routeAroundAttempts(): number {
    return this.#trap.stats.accepted;
  }

  /**
   * For each server, the indexes of the servers it has a route to right now (from /routez).
   * A stopped server has none.
   */
  async routes(): Promise<number[][]> {
    const views = await Promise.all(
      this.#servers.map((s) => (s.running ? getJson<Routez>(`${s.monitorUrl}/routez`) : undefined)),
    );
    const ids = views.map((v) => v?.server_id);
    return views.map((v) =>
      v === undefined
        ? []
        : [...new Set((v.routes ?? []).map((r) => ids.indexOf(r.remote_id)).filter((j) => j >= 0))].sort(),
    );
  }

  /** Resolves once every running server routes to every other running server. */
  async waitForRoutes({ timeout = 10_000 }: { timeout?: number } = {}): Promise<void> {
    let last: number[][] = [];
    await waitFor(
      async () => {
        last = await this.routes();
        const running = this.#servers.flatMap((s, i) => (s.running ? [i] : []));
        return running.every((i) => running.every((j) => j === i || last[i]?.includes(j)));
      },
      { timeout, message: `proxied routes not all up within ${timeout} ms` },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message} (routes: ${JSON.stringify(last)})`, { cause: err });
    });
  }

  /** Resolves once no running server has a route to `i`, nor `i` to any. */
  async waitForIsolated(i: number, { timeout = 20_000 }: { timeout?: number } = {}): Promise<void> {
    this.#index(i);
    let last: number[][] = [];
    await waitFor(
      async () => {
        last = await this.routes();
        return (last[i]?.length ?? 0) === 0 && last.every((r) => !r.includes(i));
      },
      { timeout, message: `server ${i} still routed after ${timeout} ms` },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message} (routes: ${JSON.stringify(last)})`, { cause: err });
    });
  }

  /** Kills every server and closes every proxy. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= Promise.allSettled([
      ...this.#servers.map((s) => s.close()),
      ...[...this.#routeLinks.values(), ...this.#clientLinks, this.#trap].map((p) => p.close()),
    ]).then(() => undefined);
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #index(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.#servers.length)
      throw new RangeError(`no cluster member ${i} (size ${this.#servers.length})`);
  }
}

function linkKey(i: number, j: number): string {
  return `${i}-${j}`;
}

/**
 * A port free right now, for the cluster listeners, which must be known before any server
 * starts because each server's routes name the others' proxies.
 */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}
