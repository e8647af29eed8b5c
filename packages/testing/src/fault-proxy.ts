// A loopback TCP proxy that injects network faults into one link (a NATS client connection or a
// route between two servers): cut, blackhole (both ways or one way), delay, heal.
import { createServer, type Server, Socket } from "node:net";
import { InvalidOptionError } from "@keyhold/core";

/**
 * The proxy's mode. `open`: bytes flow. `cut`: every connection is reset and new ones are reset
 * as soon as they are accepted. `blackhole`: connections are accepted and stay open, but the
 * bytes of the blackholed direction(s) are dropped.
 */
export type FaultMode = "open" | "cut" | "blackhole";

/**
 * A direction of a link. `forward`: from the side that connects (the client, or the server
 * that dials the route) to the target. `backward`: from the target back.
 */
export type Direction = "forward" | "backward";

export interface FaultProxyOptions {
  /** Port of the target on 127.0.0.1 (the proxy connects there for each accepted connection). */
  readonly targetPort: number;
  /** Port to listen on (127.0.0.1 only). @default 0 (a random free port) */
  readonly port?: number;
  /** A name for error messages and stats. @default `proxy->${targetPort}` */
  readonly name?: string;
}

export interface FaultProxyStats {
  /** Connections accepted since start (refused ones included). */
  readonly accepted: number;
  /** Connections reset on arrival because the link was cut. */
  readonly refused: number;
  /** Connections currently open. */
  readonly open: number;
  /** Connections the proxy reset (cut, or damaged by a blackhole and reset on heal). */
  readonly reset: number;
  readonly forwardBytes: number;
  readonly backwardBytes: number;
  /** Bytes dropped by a blackhole, per direction. */
  readonly forwardDropped: number;
  readonly backwardDropped: number;
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Bytes were dropped: the byte stream has a hole, so heal() resets it. */
  damaged: boolean;
  readonly queues: Record<Direction, { due: number; chunk: Buffer }[]>;
  readonly timers: Record<Direction, NodeJS.Timeout | undefined>;
}

function validPort(name: string, value: unknown, allowZero: boolean): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < (allowZero ? 0 : 1) || value > 65_535)
    throw new InvalidOptionError(name, `an integer port ${allowZero ? 0 : 1}..65535`, value);
  return value;
}

/**
 * Start one per link with `await FaultProxy.start({ targetPort })` and point the link at
 * `proxy.port`. Faults apply to open connections at once and to later ones until `heal()`.
 */
export class FaultProxy implements AsyncDisposable {
  readonly name: string;
  readonly targetPort: number;
  readonly #server: Server;
  readonly #pairs = new Set<Pair>();
  #mode: FaultMode = "open";
  #holes: Record<Direction, boolean> = { forward: false, backward: false };
  #delay: Record<Direction, number> = { forward: 0, backward: 0 };
  #stats = {
    accepted: 0,
    refused: 0,
    reset: 0,
    forwardBytes: 0,
    backwardBytes: 0,
    forwardDropped: 0,
    backwardDropped: 0,
  };
  #closing: Promise<void> | undefined;

  private constructor(server: Server, targetPort: number, name: string) {
    this.#server = server;
    this.targetPort = targetPort;
    this.name = name;
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const targetPort = validPort("targetPort", options.targetPort, false);
    const port = validPort("port", options.port ?? 0, true);
    const server = createServer({ noDelay: true });
    const proxy = new FaultProxy(server, targetPort, options.name ?? `proxy->${targetPort}`);
    server.on("connection", (socket) => proxy.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return proxy;
  }

  /** The port the proxy listens on (127.0.0.1). */
  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error(`${this.name} is not listening`);
    return address.port;
  }

  /** `nats://127.0.0.1:<port>`, for a client link. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** `nats-route://127.0.0.1:<port>`, for a route link. */
  get routeUrl(): string {
    return `nats-route://127.0.0.1:${this.port}`;
  }

  get mode(): FaultMode {
    return this.#mode;
  }

  get stats(): FaultProxyStats {
    return { ...this.#stats, open: this.#pairs.size };
  }

  /** Resets every connection and resets new ones on arrival, until heal(). */
  cut(): void {
    this.#mode = "cut";
    for (const pair of [...this.#pairs]) this.#reset(pair);
  }

  /**
   * Drops bytes while keeping connections open: both directions by default, or only
   * `direction` (a one-way partition: `"forward"` drops what the connecting side sends, while
   * what the target sends still arrives).
   */
  blackhole(direction?: Direction): void {
    if (direction !== undefined && direction !== "forward" && direction !== "backward")
      throw new InvalidOptionError("direction", '"forward" or "backward"', direction);
    this.#mode = "blackhole";
    this.#holes = { forward: direction !== "backward", backward: direction !== "forward" };
  }

  /**
   * Delays bytes by `ms` in each direction (or `{ forward, backward }`), keeping their order.
   * Independent of the mode; `delay(0)` removes it.
   */
  delay(ms: number | { readonly forward?: number; readonly backward?: number }): void {
    const d = typeof ms === "number" ? { forward: ms, backward: ms } : ms;
    for (const dir of ["forward", "backward"] as const) {
      const v = d[dir] ?? 0;
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
        throw new InvalidOptionError(`delay.${dir}`, "a finite number >= 0", v);
    }
    this.#delay = { forward: d.forward ?? 0, backward: d.backward ?? 0 };
  }

  /**
   * Back to `open` with no delay. Connections that lost bytes in a blackhole are reset: their
   * byte stream has a hole no protocol can resume from, so the peers must reconnect.
   */
  heal(): void {
    this.#mode = "open";
    this.#holes = { forward: false, backward: false };
    this.#delay = { forward: 0, backward: 0 };
    for (const pair of [...this.#pairs]) if (pair.damaged) this.#reset(pair);
  }

  /** Stops listening and closes every connection. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      for (const pair of [...this.#pairs]) this.#drop(pair, "destroy");
    });
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #accept(client: Socket): void {
    this.#stats.accepted++;
    client.on("error", () => {});
    if (this.#mode === "cut" || this.#closing !== undefined) {
      this.#stats.refused++;
      client.resetAndDestroy();
      return;
    }
    client.setNoDelay(true);
    const upstream = new Socket();
    upstream.on("error", () => {});
    const pair: Pair = {
      client,
      upstream,
      damaged: false,
      queues: { forward: [], backward: [] },
      timers: { forward: undefined, backward: undefined },
    };
    this.#pairs.add(pair);
    // Until the upstream connects, forward bytes wait in the socket's own buffer (write queues).
    upstream.connect({ host: "127.0.0.1", port: this.targetPort }, () => upstream.setNoDelay(true));
    client.on("data", (chunk: Buffer) => this.#carry(pair, "forward", chunk));
    upstream.on("data", (chunk: Buffer) => this.#carry(pair, "backward", chunk));
    client.on("close", () => this.#drop(pair, "end"));
    upstream.on("close", () => this.#drop(pair, "end"));
  }

  #carry(pair: Pair, dir: Direction, chunk: Buffer): void {
    if (this.#mode === "blackhole" && this.#holes[dir]) {
      pair.damaged = true;
      if (dir === "forward") this.#stats.forwardDropped += chunk.length;
      else this.#stats.backwardDropped += chunk.length;
      return;
    }
    const delay = this.#delay[dir];
    const queue = pair.queues[dir];
    if (delay === 0 && queue.length === 0) {
      this.#write(pair, dir, chunk);
      return;
    }
    // Keep order when the delay shrinks: nothing leaves before what arrived earlier.
    const last = queue[queue.length - 1];
    queue.push({ due: Math.max(performance.now() + delay, last?.due ?? 0), chunk });
    this.#schedule(pair, dir);
  }

  #schedule(pair: Pair, dir: Direction): void {
    if (pair.timers[dir] !== undefined) return;
    const first = pair.queues[dir][0];
    if (first === undefined) return;
    pair.timers[dir] = setTimeout(
      () => {
        pair.timers[dir] = undefined;
        const queue = pair.queues[dir];
        const now = performance.now();
        while (queue.length > 0 && (queue[0] as { due: number }).due <= now + 1) {
          this.#write(pair, dir, (queue.shift() as { chunk: Buffer }).chunk);
        }
        this.#schedule(pair, dir);
      },
      Math.max(0, first.due - performance.now()),
    );
  }

  #write(pair: Pair, dir: Direction, chunk: Buffer): void {
    const to = dir === "forward" ? pair.upstream : pair.client;
    if (to.destroyed) return;
    to.write(chunk);
    if (dir === "forward") this.#stats.forwardBytes += chunk.length;
    else this.#stats.backwardBytes += chunk.length;
  }

  #reset(pair: Pair): void {
    this.#stats.reset++;
    this.#drop(pair, "reset");
  }

  /** `end`: one side closed, pass the close on after what is buffered. */
  #drop(pair: Pair, how: "reset" | "destroy" | "end"): void {
    if (!this.#pairs.delete(pair)) return;
    for (const dir of ["forward", "backward"] as const) clearTimeout(pair.timers[dir]);
    for (const s of [pair.client, pair.upstream]) {
      if (s.destroyed) continue;
      // A reset (RST) is what a cut link looks like to both peers.
      if (how === "reset" && s.readyState !== "opening") s.resetAndDestroy();
      else if (how === "end") s.end();
      else s.destroy();
    }
  }
}
