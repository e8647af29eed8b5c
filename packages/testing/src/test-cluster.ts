// TestCluster: a whole Keyhold cluster inside one test process, for testing users' entities.
// On the simulated bus with a virtual clock (deterministic) or on an embedded nats-server.
// Options: test-cluster-options.ts; backends: test-backend.ts; a node's gate: gate.ts.
import { type Entity, type EntityClass, type EntityRef, Sharding } from "@keyhold/actors";
import { type Clock, InvalidArgumentError, type Transport } from "@keyhold/core";
import { ClockDriver } from "./clock-driver.js";
import { TestClusterTimeoutError } from "./errors.js";
import { Gate, GatedClock, GatedTransport } from "./gate.js";
import { SimBus, seededRandom } from "./sim-bus.js";
import { type Backend, natsBackend, simBackend } from "./test-backend.js";
import {
  parseSimBusOptions,
  parseTestClusterOptions,
  type TestClusterOptions,
  testShardingOptions,
} from "./test-cluster-options.js";
import { TestNode, type TestNodeState } from "./test-node.js";
import { VirtualClock } from "./virtual-clock.js";

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
  readonly #driver: ClockDriver | undefined;
  readonly #backend: Backend;
  readonly #opts: TestClusterOptions;
  readonly #nodes = new Map<string, TestNode>();
  #groups: readonly (readonly string[])[] = [];
  #client: Sharding | undefined;
  #clientTransport: Transport | undefined;
  #seq = 0;
  #closed: Promise<void> | undefined;

  private constructor(
    opts: TestClusterOptions,
    backend: Backend,
    bus: SimBus | undefined,
    parsed: { readonly heartbeatMs: number; readonly ttlMs: number; readonly driveLimitMs: number },
  ) {
    this.#opts = opts;
    this.#backend = backend;
    this.bus = bus;
    this.clock = bus?.clock;
    this.#driver = bus ? new ClockDriver(bus.clock) : undefined;
    this.mode = bus ? "sim" : "nats";
    this.heartbeatMs = parsed.heartbeatMs;
    this.ttlMs = parsed.ttlMs;
    this.#driveLimitMs = parsed.driveLimitMs;
  }

  /** Starts `nodes` nodes and a client, and waits until every one sees all the nodes. */
  static async start(options: TestClusterOptions): Promise<TestCluster> {
    const parsed = parseTestClusterOptions(options);
    const { nats } = parsed;
    let bus: SimBus | undefined;
    let backend: Backend;
    if (nats) {
      backend = await natsBackend(typeof nats === "object" ? nats.url : undefined);
    } else {
      const { latencyMs, seed } = parseSimBusOptions(options);
      bus = new SimBus(new VirtualClock(), { latencyMs, random: seededRandom(seed) });
      backend = simBackend(bus);
    }
    const cluster = new TestCluster(options, backend, bus, parsed);
    try {
      for (let i = 0; i < parsed.nodes; i++) await cluster.#join(undefined);
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

  #shardingOptions(id: string, transport: Transport, clock: Clock) {
    return testShardingOptions(this.#opts, this, id, transport, clock);
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
    return this.#driver ? this.#driver.run(promise, limitMs) : promise;
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
   * reach (after a join, leave, crash, pause or partition), and every running node that joins
   * step by step took its last step in every view. Rejects after `timeoutMs`.
   */
  async converge(opts: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 20 * this.ttlMs;
    const deadline = this.now() + timeoutMs;
    for (;;) {
      const views = this.#views();
      if (views.every((v) => same(v.sees, v.expected) && v.steps.length === 0)) return;
      if (this.now() >= deadline) {
        const lines = views.map(
          (v) =>
            `${v.id} sees [${v.sees.join(", ")}], expected [${v.expected.join(", ")}]` +
            (v.steps.length > 0 ? `, still joining step by step: ${v.steps.join(", ")}` : ""),
        );
        throw new TestClusterTimeoutError(
          `TestCluster: membership did not converge within ${timeoutMs} ms: ${lines.join("; ")}`,
        );
      }
      await this.advance(Math.max(10, Math.floor(this.heartbeatMs / 2)));
    }
  }

  #views(): { id: string; sees: readonly string[]; expected: string[]; steps: string[] }[] {
    const running = this.running();
    const group = (id: string) => this.#groupOf(id);
    // Running members of a view still capped by an admission front (joining step by step).
    const steps = (ring: Sharding["node"]["ring"]) => running.filter((r) => ring.capOf(r) !== undefined);
    const out: { id: string; sees: readonly string[]; expected: string[]; steps: string[] }[] = [];
    for (const id of running) {
      const node = this.node(id).sharding.node;
      const expected = running.filter((r) => group(r) === group(id));
      out.push({ id, sees: node.members(), expected, steps: steps(node.ring) });
    }
    if (this.#client) {
      const node = this.#client.node;
      const expected = running.filter((r) => group(r) === group("client"));
      out.push({ id: "client", sees: node.members(), expected, steps: steps(node.ring) });
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
