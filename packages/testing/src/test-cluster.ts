// TestCluster: a whole Keyhold cluster inside one test process, for testing users' entities.
// On the simulated bus with a virtual clock (deterministic) or on an embedded nats-server.
import {
  type Entity,
  type EntityClass,
  type EntityRef,
  Sharding,
  type ShardingOptions,
} from "@keyhold/actors";
import {
  type Clock,
  InvalidArgumentError,
  InvalidOptionError,
  type Logger,
  NatsTransport,
  silentLogger,
  systemClock,
  type Transport,
  type TransportStatus,
  type TransportSubscription,
} from "@keyhold/core";
import { connect } from "@nats-io/transport-node";
import { TestClusterTimeoutError } from "./errors.js";
import { NatsServer } from "./nats-server.js";
import { SimBus, type SimEndpoint, seededRandom } from "./sim-bus.js";
import { VirtualClock } from "./virtual-clock.js";

/** Heartbeat period of a TestCluster on the simulated bus, in virtual ms. */
export const DEFAULT_TEST_HEARTBEAT_MS = 100;
/** Heartbeat period of a TestCluster on nats-server, in real ms: short, so tests stay quick. */
export const DEFAULT_TEST_NATS_HEARTBEAT_MS = 200;
/** Longest a TestCluster drives virtual time for one call before giving up, in virtual ms. */
export const DEFAULT_TEST_DRIVE_LIMIT_MS = 600_000;

/** Sharding options a TestCluster passes to every node; the connection and identity are its own. */
export type TestNodeOptions = Omit<
  ShardingOptions,
  | "servers"
  | "connection"
  | "natsOptions"
  | "transport"
  | "clock"
  | "cluster"
  | "nodeId"
  | "entities"
  | "heartbeatMs"
  | "ttlMs"
  | "ringSize"
  | "logger"
>;

export interface TestClusterOptions {
  /** Entity classes every node hosts. */
  readonly entities: readonly EntityClass[];
  /** Nodes started by `start()`, named `node-1` … `node-N`. @default 3 */
  readonly nodes?: number;
  /**
   * Run on NATS instead of the simulated bus: `true` starts an embedded nats-server (needs
   * `nats-server` on PATH), `{ url }` uses a running one. Time is then real. @default false
   */
  readonly nats?: boolean | { readonly url: string };
  /** Heartbeat period. @default 100 on the simulated bus, 200 on NATS */
  readonly heartbeatMs?: number;
  /** Lease time-to-live. @default 3 × heartbeatMs */
  readonly ttlMs?: number;
  /** Partitions. @default 64 */
  readonly ringSize?: number;
  /** Simulated bus: delivery delay in virtual ms. @default 1 */
  readonly latencyMs?: number;
  /** Simulated bus: seed of its randomness (queue-group picks, jitter). @default 1 */
  readonly seed?: number;
  /** Further Sharding options for every node, e.g. `{ store: memoryStore(), idleMs: 1000 }`. @default {} */
  readonly node?: TestNodeOptions;
  /** Where the nodes log. @default silent */
  readonly logger?: Logger;
  /**
   * Simulated bus: a call through `ref()`/`run()` fails with TestClusterTimeoutError after
   * this much virtual time without settling. @default 600000
   */
  readonly driveLimitMs?: number;
}

export type TestNodeState = "running" | "paused" | "crashed" | "left";

/**
 * Runs or holds back everything that reaches one node's code (timers, messages, replies), so
 * the cluster can pause a node like SIGSTOP or freeze it for good like SIGKILL.
 */
class Gate {
  state: TestNodeState = "running";
  readonly #held: (() => void)[] = [];

  run(fn: () => void): void {
    if (this.state === "crashed") return;
    if (this.state === "paused") this.#held.push(fn);
    else fn();
  }

  resume(): void {
    this.state = "running";
    for (const fn of this.#held.splice(0)) fn();
  }

  drop(): void {
    this.#held.length = 0;
  }
}

class GatedClock implements Clock {
  readonly #base: Clock;
  readonly #gate: Gate;
  constructor(base: Clock, gate: Gate) {
    this.#base = base;
    this.#gate = gate;
  }
  now(): number {
    return this.#base.now();
  }
  monoNow(): number {
    return this.#base.monoNow();
  }
  setTimeout(fn: () => void, ms: number): unknown {
    return this.#base.setTimeout(() => this.#gate.run(fn), ms);
  }
  clearTimeout(handle: unknown): void {
    this.#base.clearTimeout(handle);
  }
}

class GatedTransport implements Transport {
  readonly #inner: Transport;
  readonly #gate: Gate;
  constructor(inner: Transport, gate: Gate) {
    this.#inner = inner;
    this.#gate = gate;
  }
  publish(subject: string, data: Uint8Array): void {
    this.#gate.run(() => this.#inner.publish(subject, data));
  }
  subscribe(
    subject: string,
    handler: (msg: { subject: string; data: Uint8Array; reply?: string | undefined }) => void,
    opts?: { queue?: string },
  ): TransportSubscription {
    return this.#inner.subscribe(subject, (m) => this.#gate.run(() => handler(m)), opts);
  }
  request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.#gate.run(() => {
        this.#inner.request(subject, data, opts).then(
          (v) => this.#gate.run(() => resolve(v)),
          (e: unknown) => this.#gate.run(() => reject(e)),
        );
      });
    });
  }
  onStatus(listener: (status: TransportStatus) => void): () => void {
    return this.#inner.onStatus((s) => this.#gate.run(() => listener(s)));
  }
  flush(): Promise<void> {
    return this.#inner.flush();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** One node of a TestCluster. */
export class TestNode {
  readonly id: string;
  /** The node's Sharding: `stats()`, `handoffs()`, `node.ownedPartitions()`, `ref()`… */
  readonly sharding: Sharding;
  /** @internal */
  readonly gate: Gate;
  /** @internal */
  readonly transport: Transport;

  /** @internal */
  constructor(id: string, sharding: Sharding, gate: Gate, transport: Transport) {
    this.id = id;
    this.sharding = sharding;
    this.gate = gate;
    this.transport = transport;
  }

  get state(): TestNodeState {
    return this.gate.state;
  }
}

interface Backend {
  readonly clock: Clock;
  connect(name: string): Promise<Transport>;
  /** Cuts a crashed node's connection the way a dead process's socket closes. */
  kill(transport: Transport): Promise<void>;
  close(): Promise<void>;
}

function simBackend(bus: SimBus): Backend {
  return {
    clock: bus.clock,
    connect: async (name) => bus.connect(name),
    kill: (t) => (t as SimEndpoint).close(),
    close: async () => {},
  };
}

async function natsBackend(url: string | undefined): Promise<Backend> {
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

function positiveInt(name: string, value: unknown, def: number, min = 1): number {
  if (value === undefined) return def;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(name, `an integer >= ${min}`, value);
  }
  return value;
}

/**
 * A cluster of Keyhold nodes in this process, plus a client, for tests of entities. On the
 * simulated bus every call through `ref()`/`run()` drives the virtual clock until it settles,
 * so the same test reads the same on NATS, where time is real.
 */
export class TestCluster implements AsyncDisposable {
  /** "sim": simulated bus and virtual clock; "nats": a real nats-server and real time. */
  readonly mode: "sim" | "nats";
  /** The virtual clock on the simulated bus; undefined on NATS. */
  readonly clock: VirtualClock | undefined;
  /** The simulated bus (latency, partitions, traffic counts); undefined on NATS. */
  readonly bus: SimBus | undefined;
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  readonly #driveLimitMs: number;
  readonly #backend: Backend;
  readonly #opts: TestClusterOptions;
  readonly #nodes = new Map<string, TestNode>();
  /** Calls being driven, each with the way to fail it when the drive limit is reached. */
  readonly #inflight = new Map<
    Promise<unknown>,
    { readonly until: number; readonly limitMs: number; readonly fail: (err: unknown) => void }
  >();
  #groups: readonly (readonly string[])[] = [];
  #client: Sharding | undefined;
  #clientTransport: Transport | undefined;
  #driving = false;
  #seq = 0;
  #closed: Promise<void> | undefined;

  private constructor(
    opts: TestClusterOptions,
    backend: Backend,
    bus: SimBus | undefined,
    hb: number,
    ttl: number,
  ) {
    this.#opts = opts;
    this.#backend = backend;
    this.bus = bus;
    this.clock = bus?.clock;
    this.mode = bus ? "sim" : "nats";
    this.heartbeatMs = hb;
    this.ttlMs = ttl;
    this.#driveLimitMs = opts.driveLimitMs ?? DEFAULT_TEST_DRIVE_LIMIT_MS;
  }

  /** Starts `nodes` nodes and a client, and waits until every one sees all the nodes. */
  static async start(options: TestClusterOptions): Promise<TestCluster> {
    if (options === null || typeof options !== "object") {
      throw new InvalidOptionError("options", "an object", options);
    }
    if (!Array.isArray(options.entities) || options.entities.length === 0) {
      throw new InvalidOptionError("entities", "a non-empty array of entity classes", options.entities);
    }
    const nodes = positiveInt("nodes", options.nodes, 3, 0);
    const nats = options.nats ?? false;
    if (
      typeof nats !== "boolean" &&
      (typeof nats !== "object" || nats === null || typeof nats.url !== "string")
    ) {
      throw new InvalidOptionError("nats", "true, false or { url: string }", nats);
    }
    const hb = positiveInt(
      "heartbeatMs",
      options.heartbeatMs,
      nats ? DEFAULT_TEST_NATS_HEARTBEAT_MS : DEFAULT_TEST_HEARTBEAT_MS,
      10,
    );
    const ttl = positiveInt("ttlMs", options.ttlMs, 3 * hb, hb + 1);
    positiveInt("driveLimitMs", options.driveLimitMs, DEFAULT_TEST_DRIVE_LIMIT_MS);
    if (options.node !== undefined && (typeof options.node !== "object" || options.node === null)) {
      throw new InvalidOptionError("node", "an object of Sharding options", options.node);
    }
    let bus: SimBus | undefined;
    let backend: Backend;
    if (nats) {
      backend = await natsBackend(typeof nats === "object" ? nats.url : undefined);
    } else {
      const latencyMs = positiveInt("latencyMs", options.latencyMs, 1, 0);
      const seed = positiveInt("seed", options.seed, 1, 0);
      bus = new SimBus(new VirtualClock(), { latencyMs, random: seededRandom(seed) });
      backend = simBackend(bus);
    }
    const cluster = new TestCluster(options, backend, bus, hb, ttl);
    try {
      for (let i = 0; i < nodes; i++) await cluster.#join(undefined);
      cluster.#clientTransport = await backend.connect("client");
      cluster.#client = await cluster.run(
        Sharding.connect(cluster.#shardingOptions("client", cluster.#clientTransport, backend.clock)),
      );
      await cluster.converge();
    } catch (err) {
      await cluster.close().catch(() => {});
      throw err;
    }
    return cluster;
  }

  #shardingOptions(id: string, transport: Transport, clock: Clock): ShardingOptions {
    const o = this.#opts;
    return {
      skewMs: Math.max(this.ttlMs, 200),
      handoffTimeoutMs: Math.max(20 * this.heartbeatMs, 2_000),
      ...o.node,
      transport,
      clock,
      cluster: "test",
      nodeId: id,
      entities: o.entities,
      heartbeatMs: this.heartbeatMs,
      ttlMs: this.ttlMs,
      ...(o.ringSize === undefined ? {} : { ringSize: o.ringSize }),
      logger: o.logger ?? silentLogger,
    };
  }

  /** The client every `ref()` goes through (an observer: routes, owns nothing). */
  get client(): Sharding {
    if (!this.#client) throw new InvalidArgumentError("client", "used after start()", undefined);
    return this.#client;
  }

  /** Every node ever started, in start order, whatever its state. */
  get nodes(): readonly TestNode[] {
    return [...this.#nodes.values()];
  }

  /** Ids of the running nodes, sorted. */
  running(): string[] {
    return this.nodes
      .filter((n) => n.state === "running")
      .map((n) => n.id)
      .sort();
  }

  /** The node with this id; throws InvalidArgumentError for an unknown id. */
  node(id: string): TestNode {
    const n = this.#nodes.get(id);
    if (!n) throw new InvalidArgumentError("id", `one of ${[...this.#nodes.keys()].join(", ")}`, id);
    return n;
  }

  /** Milliseconds since the epoch: virtual on the simulated bus. */
  now(): number {
    return this.#backend.clock.now();
  }

  /** A typed reference through the client; on the simulated bus its calls drive the clock. */
  ref<E extends Entity<unknown>>(cls: EntityClass<E>, key: string): EntityRef<E> {
    const inner = this.client.ref(cls, key);
    if (this.mode === "nats") return inner;
    return new Proxy(inner, {
      get: (target, prop) => {
        const v = Reflect.get(target, prop) as unknown;
        if (typeof v !== "function") return v;
        return (...args: unknown[]) => {
          const out = (v as (...a: unknown[]) => unknown).apply(target, args);
          return out instanceof Promise ? this.run(out) : out;
        };
      },
    });
  }

  /** The node that owns `key` in the client's current view, or undefined when none is live. */
  ownerOf(key: string): string | undefined {
    return this.client.node.place(key);
  }

  /**
   * Resolves with `promise`. On the simulated bus, drives the virtual clock (1 ms steps)
   * until it settles; rejects with TestClusterTimeoutError after `driveLimitMs` of virtual time.
   */
  run<T>(promise: Promise<T>): Promise<T> {
    return this.#run(promise, this.#driveLimitMs);
  }

  #run<T>(promise: Promise<T>, limitMs: number): Promise<T> {
    if (!this.clock) return promise;
    let fail: (err: unknown) => void = () => {};
    const limit = new Promise<never>((_, reject) => {
      fail = reject;
    });
    const tracked: Promise<T> = Promise.race([promise, limit]).finally(() => this.#inflight.delete(tracked));
    tracked.catch(() => {});
    this.#inflight.set(tracked, { until: this.clock.now() + limitMs, limitMs, fail });
    void this.#drive();
    return tracked;
  }

  async #drive(): Promise<void> {
    const clock = this.clock;
    if (this.#driving || !clock) return;
    this.#driving = true;
    try {
      while (this.#inflight.size > 0) {
        for (const [p, { until, limitMs, fail }] of this.#inflight) {
          if (clock.now() < until) continue;
          // A call that never settles: a handler that never returns, with its deadline raised.
          this.#inflight.delete(p);
          fail(
            new TestClusterTimeoutError(
              `TestCluster: a call still pending after ${limitMs} virtual ms (driveLimitMs)`,
            ),
          );
        }
        await clock.advance(1);
      }
    } finally {
      this.#driving = false;
    }
  }

  /** Lets `ms` pass: virtual time on the simulated bus (timers fire in order), real time on NATS. */
  async advance(ms: number): Promise<void> {
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw new InvalidArgumentError("ms", "a finite number >= 0", ms);
    }
    if (this.clock) await this.clock.advance(ms);
    else await new Promise((r) => setTimeout(r, ms));
  }

  /**
   * Starts one more node (id `node-<n>` unless given) and returns it once every running node
   * and the client see it.
   */
  async join(id?: string): Promise<TestNode> {
    const node = await this.#join(id);
    await this.converge();
    return node;
  }

  async #join(id: string | undefined): Promise<TestNode> {
    const nodeId = id ?? `node-${++this.#seq}`;
    if (this.#nodes.has(nodeId) || nodeId === "client") {
      throw new InvalidArgumentError("id", 'an id not used in this cluster (nor "client")', nodeId);
    }
    const gate = new Gate();
    const raw = await this.#backend.connect(nodeId);
    const transport = new GatedTransport(raw, gate);
    const clock = new GatedClock(this.#backend.clock, gate);
    let sharding: Sharding;
    try {
      sharding = await this.run(Sharding.start(this.#shardingOptions(nodeId, transport, clock)));
    } catch (err) {
      await this.#backend.kill(raw).catch(() => {});
      throw err;
    }
    const node = new TestNode(nodeId, sharding, gate, raw);
    this.#nodes.set(nodeId, node);
    return node;
  }

  #inState(id: string, op: string, want: TestNodeState): TestNode {
    const n = this.node(id);
    if (n.state !== want)
      throw new InvalidArgumentError("id", `a ${want} node for ${op}()`, `${id} (${n.state})`);
    return n;
  }

  /**
   * Graceful leave: the node hands its entities off and closes; resolves once the others and
   * the client see it gone.
   */
  async leave(id: string): Promise<void> {
    const n = this.#inState(id, "leave", "running");
    await this.run(n.sharding.close());
    n.gate.state = "left";
    await this.#backend.kill(n.transport).catch(() => {});
    await this.converge();
  }

  /**
   * Kills the node like SIGKILL: no leave message, no hand-off; its connection closes and its
   * code never runs again. Peers drop it when its lease expires (`advance(ttlMs)`).
   */
  async crash(id: string): Promise<void> {
    const n = this.#inState(id, "crash", "running");
    n.gate.state = "crashed";
    n.gate.drop();
    await this.#backend.kill(n.transport).catch(() => {});
  }

  /**
   * Freezes the node like SIGSTOP: its timers and incoming messages wait (its connection stays
   * open) and run in order on `resume()`. Its wall clock keeps going.
   */
  pause(id: string): void {
    this.#inState(id, "pause", "running").gate.state = "paused";
  }

  resume(id: string): void {
    this.#inState(id, "resume", "paused").gate.resume();
  }

  /**
   * Splits the cluster: nodes in different groups cannot reach each other. Nodes not named and
   * the client join the first group. Simulated bus only.
   */
  partition(...groups: readonly (readonly string[])[]): void {
    if (!this.bus) {
      throw new InvalidArgumentError(
        "partition",
        "used on the simulated bus (partitions of a real nats-server are not supported here)",
        groups,
      );
    }
    for (const g of groups) for (const id of g) this.node(id);
    this.bus.partition(...groups);
    this.#groups = groups.map((g) => [...g]);
  }

  /** Ends a partition. */
  heal(): void {
    this.bus?.heal();
    this.#groups = [];
  }

  /**
   * Waits until every running node and the client see exactly the running nodes they can
   * reach (after a join, leave, crash, pause or partition). Rejects after `timeoutMs`.
   */
  async converge(opts: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 20 * this.ttlMs;
    const deadline = this.now() + timeoutMs;
    for (;;) {
      const views = this.#views();
      if (views.every((v) => same(v.sees, v.expected))) return;
      if (this.now() >= deadline) {
        const lines = views.map(
          (v) => `${v.id} sees [${v.sees.join(", ")}], expected [${v.expected.join(", ")}]`,
        );
        throw new TestClusterTimeoutError(
          `TestCluster: membership did not converge within ${timeoutMs} ms: ${lines.join("; ")}`,
        );
      }
      await this.advance(Math.max(10, Math.floor(this.heartbeatMs / 2)));
    }
  }

  #views(): { id: string; sees: readonly string[]; expected: string[] }[] {
    const running = this.running();
    const group = (id: string) => this.#groupOf(id);
    const out: { id: string; sees: readonly string[]; expected: string[] }[] = [];
    for (const id of running) {
      const sees = this.node(id).sharding.node.members();
      out.push({ id, sees, expected: running.filter((r) => group(r) === group(id)) });
    }
    if (this.#client) {
      out.push({
        id: "client",
        sees: this.#client.node.members(),
        expected: running.filter((r) => group(r) === group("client")),
      });
    }
    return out;
  }

  #groupOf(id: string): number {
    for (let i = 0; i < this.#groups.length; i++) if (this.#groups[i]?.includes(id)) return i;
    return 0;
  }

  /** Closes the client and every node still running or paused, then the server it started. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.bus?.heal();
      for (const n of this.#nodes.values()) if (n.state === "paused") n.gate.resume();
      const closing: Promise<void>[] = [];
      if (this.#client) closing.push(this.#client.close());
      for (const n of this.#nodes.values()) {
        if (n.state === "running")
          closing.push(n.sharding.close().then(() => this.#backend.kill(n.transport)));
      }
      // Closing is bounded by the nodes' own deadlines (asks, hand-off), not by driveLimitMs.
      await this.#run(Promise.allSettled(closing), Number.POSITIVE_INFINITY);
      if (this.#clientTransport) await this.#backend.kill(this.#clientTransport).catch(() => {});
      await this.#backend.close();
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function same(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
