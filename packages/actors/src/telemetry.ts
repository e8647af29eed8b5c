// OpenTelemetry for a Sharding node or client: spans for asks (CLIENT on the caller, SERVER on
// the owner, the trace context carried in NATS headers), activations, hand-offs and replica
// writes (INTERNAL); metrics read from the node's own counters when the SDK collects, plus call
// and hand-off duration histograms. `@opentelemetry/api` is an optional peer dependency,
// imported only when `telemetry.enabled` is set; off, every hook is one boolean test.
import type { MessageHeaders, ShardNode } from "@keyhold/core";
import type * as OtelApi from "@opentelemetry/api";
import { TelemetryUnavailableError } from "./errors.js";
import type { Lifecycle } from "./lifecycle.js";
import type { MessageContext } from "./mailbox.js";
import { parseTelemetryOptions } from "./options.js";
import type { Replicator } from "./replication.js";
import type { Slot } from "./slots.js";
import type { StateStore } from "./store.js";

type Api = typeof OtelApi;

const SCOPE = "@keyhold/actors";
const SYSTEM = "keyhold";

/** Counters of this node the metrics read at collection time (no work on the hot path). */
export interface TelemetrySource {
  readonly node: ShardNode;
  stats(): {
    readonly host: { readonly activations: number; readonly passivations: number };
    readonly replication: { readonly quorumFailures: number; readonly refillsFailed: number };
  };
  /** Per entity type, [active, known]; messages queued. Undefined on a client. */
  census(): { types: [string, number, number][]; queued: number } | undefined;
}

interface Instruments {
  readonly clientDuration: OtelApi.Histogram;
  readonly serverDuration: OtelApi.Histogram;
  readonly handoffDuration: OtelApi.Histogram;
  readonly storeErrors: OtelApi.Counter;
  rebalances: number;
  acquired: number;
  released: number;
}

export class Telemetry {
  /** The one test the hot path makes. */
  readonly on: boolean;
  readonly #api: Api | undefined;
  readonly #tracer: OtelApi.Tracer | undefined;
  readonly #meter: OtelApi.Meter | undefined;
  #m: Instruments | undefined;

  static readonly off = new Telemetry(undefined, undefined, undefined);

  private constructor(
    api: Api | undefined,
    tracer: OtelApi.Tracer | undefined,
    meter: OtelApi.Meter | undefined,
  ) {
    this.on = api !== undefined;
    this.#api = api;
    this.#tracer = tracer;
    this.#meter = meter;
  }

  /** Off unless `enabled`; then loads @opentelemetry/api (TelemetryUnavailableError when missing). */
  static async create(options: unknown): Promise<Telemetry> {
    const o = parseTelemetryOptions(options);
    if (o.enabled !== true) return Telemetry.off;
    let api: Api;
    try {
      api = await import("@opentelemetry/api");
    } catch (err) {
      throw new TelemetryUnavailableError(err);
    }
    const version = "0.1.0";
    const tracer = (o.tracerProvider ?? api.trace).getTracer(SCOPE, version) as OtelApi.Tracer;
    const meter = (o.meterProvider ?? api.metrics).getMeter(SCOPE, version) as OtelApi.Meter;
    return new Telemetry(api, tracer, meter);
  }

  /**
   * Registers the metrics over `source`'s counters and follows its ownership events (rebalances,
   * partitions gained and lost) until the node closes.
   */
  observe(source: TelemetrySource): void {
    const meter = this.#meter;
    if (!meter) return;
    const bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    const seconds = (name: string, description: string) =>
      meter.createHistogram(name, { description, unit: "s", advice: { explicitBucketBoundaries: bounds } });
    const m: Instruments = {
      clientDuration: seconds(
        "rpc.client.call.duration",
        "Duration of asks, measured by the caller (retries included)",
      ),
      serverDuration: seconds(
        "rpc.server.call.duration",
        "Duration of asks served for other nodes, measured by the owner",
      ),
      handoffDuration: seconds("keyhold.handoff.duration", "Time from acquiring a partition to serving it"),
      storeErrors: meter.createCounter("keyhold.store.errors", {
        description: "Failed durable store loads and saves",
      }),
      rebalances: 0,
      acquired: 0,
      released: 0,
    };
    this.#m = m;
    const node = source.node;
    // Several nodes (or a node and a client) may share a process and its meter provider: each
    // observes with its own id, so their readings do not overwrite each other.
    const self = { "keyhold.node.id": node.id };
    const gauge = (name: string, description: string, read: (r: OtelApi.ObservableResult) => void) =>
      meter.createObservableGauge(name, { description }).addCallback(read);
    const counter = (name: string, description: string, read: () => number) =>
      meter.createObservableCounter(name, { description }).addCallback((r) => r.observe(read(), self));
    gauge("keyhold.members", "Live members in this node's view", (r) =>
      r.observe(node.members().length, self),
    );
    gauge("keyhold.partitions.owned", "Partitions this node owns", (r) =>
      r.observe(node.ownedPartitions().length, self),
    );
    gauge("keyhold.entities.active", "Live entity instances, per type", (r) => {
      for (const [type, active] of source.census()?.types ?? [])
        r.observe(active, { ...self, "keyhold.entity.type": type });
    });
    gauge("keyhold.entities.known", "Entities whose state this node holds, per type", (r) => {
      for (const [type, , known] of source.census()?.types ?? [])
        r.observe(known, { ...self, "keyhold.entity.type": type });
    });
    gauge("keyhold.mailbox.size", "Messages waiting in entity mailboxes", (r) =>
      r.observe(source.census()?.queued ?? 0, self),
    );
    counter("keyhold.entity.activations", "Entity activations", () => source.stats().host.activations);
    counter("keyhold.entity.passivations", "Entity passivations", () => source.stats().host.passivations);
    counter("keyhold.replication.errors", "Replica writes that missed their quorum", () => {
      const s = source.stats().replication;
      return s.quorumFailures + s.refillsFailed;
    });
    counter("keyhold.rebalances", "Member set changes that moved the ring", () => m.rebalances);
    meter
      .createObservableCounter("keyhold.partitions.moved", { description: "Partitions gained and lost" })
      .addCallback((r) => {
        r.observe(m.acquired, { ...self, "keyhold.direction": "in" });
        r.observe(m.released, { ...self, "keyhold.direction": "out" });
      });
    void (async () => {
      let first = true;
      for await (const e of node.events()) {
        if (e.type === "members") {
          if (!first && (e.joined.length > 0 || e.left.length > 0)) m.rebalances++;
          first = false;
        } else if (e.type === "acquired") m.acquired++;
        else if (e.type === "released") m.released++;
      }
    })();
  }

  #attrs(type: string, h: string): OtelApi.Attributes {
    return { "rpc.system.name": SYSTEM, "rpc.method": `${type}/${h}` };
  }

  #end(
    span: OtelApi.Span,
    hist: OtelApi.Histogram | undefined,
    t0: number,
    attrs: OtelApi.Attributes,
    err?: unknown,
  ) {
    const api = this.#api!;
    if (err !== undefined) {
      const type = errorType(err);
      span.setAttribute("error.type", type);
      span.setStatus({
        code: api.SpanStatusCode.ERROR,
        message: err instanceof Error ? err.message : String(err),
      });
      hist?.record((performance.now() - t0) / 1000, { ...attrs, "error.type": type });
    } else hist?.record((performance.now() - t0) / 1000, attrs);
    span.end();
  }

  /** An ask as the caller sees it: a CLIENT span whose context `run` sends in the request's headers. */
  clientAsk<T>(
    type: string,
    key: string,
    h: string,
    run: (headers: MessageHeaders) => Promise<T>,
  ): Promise<T> {
    const api = this.#api!;
    const attrs = this.#attrs(type, h);
    const parent = api.context.active();
    const span = this.#tracer!.startSpan(
      `${type}/${h}`,
      { kind: api.SpanKind.CLIENT, attributes: { ...attrs, "keyhold.entity.key": key } },
      parent,
    );
    const ctx = api.trace.setSpan(parent, span);
    const headers: Record<string, string> = {};
    api.propagation.inject(ctx, headers);
    const t0 = performance.now();
    let p: Promise<T>;
    try {
      p = api.context.with(ctx, () => run(headers));
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.then(
      (r) => {
        this.#end(span, this.#m?.clientDuration, t0, attrs);
        return r;
      },
      (err: unknown) => {
        this.#end(span, this.#m?.clientDuration, t0, attrs, err);
        throw err;
      },
    );
  }

  /**
   * An ask served for another node: a SERVER span, child of the caller's span when the request
   * carried its context. Runs `serve` in the span's context; call the returned `end` once the
   * answer is out (`error` when it is an error answer).
   */
  serverAsk(
    msg: { readonly t: string; readonly key: string; readonly h: string },
    headers: MessageHeaders | undefined,
    serve: (end: (error?: string) => void) => void,
  ): void {
    const api = this.#api!;
    const attrs = this.#attrs(msg.t, msg.h);
    const parent = headers ? api.propagation.extract(api.context.active(), headers) : api.context.active();
    const span = this.#tracer!.startSpan(
      `${msg.t}/${msg.h}`,
      { kind: api.SpanKind.SERVER, attributes: { ...attrs, "keyhold.entity.key": msg.key } },
      parent,
    );
    const t0 = performance.now();
    let ended = false;
    const end = (error?: string) => {
      if (ended) return;
      ended = true;
      this.#end(span, this.#m?.serverDuration, t0, attrs, error);
    };
    api.context.with(api.trace.setSpan(parent, span), () => serve(end));
  }

  /** Captures the active trace context and runs a function in a captured one (mailbox.ts). */
  readonly context: MessageContext = {
    capture: (): unknown => this.#api!.context.active(),
    within: <R>(ctx: unknown, fn: () => R): R => this.#api!.context.with(ctx as OtelApi.Context, fn),
  };

  /** An INTERNAL span around `run` (activation, replica write). */
  internal<T>(
    name: string,
    attributes: Readonly<Record<string, string | number>>,
    run: () => Promise<T>,
  ): Promise<T> {
    const api = this.#api!;
    const span = this.#tracer!.startSpan(name, { kind: api.SpanKind.INTERNAL, attributes });
    const t0 = performance.now();
    let p: Promise<T>;
    try {
      p = api.context.with(api.trace.setSpan(api.context.active(), span), run);
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.then(
      (r) => {
        this.#end(span, undefined, t0, attributes);
        return r;
      },
      (err: unknown) => {
        this.#end(span, undefined, t0, attributes, err);
        throw err;
      },
    );
  }

  /** An activation (load, construct, onActivate) as an INTERNAL span, child of the message's span. */
  activation(slot: Slot, lifecycle: Lifecycle): Promise<void> {
    return this.internal(
      "keyhold.activate",
      { "keyhold.entity.type": slot.def.type, "keyhold.entity.key": slot.key },
      () => lifecycle.activate(slot),
    );
  }

  /** Replica writes as INTERNAL spans. */
  replicator(r: Replicator): Pick<Replicator, "write"> {
    return {
      write: (rec, p) =>
        this.internal(
          "keyhold.replicate",
          { "keyhold.entity.type": rec.t, "keyhold.entity.key": rec.key, "keyhold.partition": p },
          () => r.write(rec, p),
        ),
    };
  }

  /** A completed hand-off: the duration histogram and an INTERNAL span over the time it took. */
  handoff(info: { readonly partition: number; readonly ms: number; readonly records: number }): void {
    const api = this.#api!;
    this.#m?.handoffDuration.record(info.ms / 1000);
    const now = Date.now();
    this.#tracer!.startSpan("keyhold.handoff", {
      kind: api.SpanKind.INTERNAL,
      startTime: now - info.ms,
      attributes: { "keyhold.partition": info.partition, "keyhold.handoff.records": info.records },
    }).end(now);
  }

  /** A store that counts its failed loads and saves (and spans them). */
  store(store: StateStore): StateStore {
    const fail = (op: string) => (err: unknown) => {
      this.#m?.storeErrors.add(1, { "keyhold.store.operation": op, "error.type": errorType(err) });
      throw err;
    };
    return {
      load: (t, k) =>
        this.internal("keyhold.store.load", { "keyhold.entity.type": t }, () => store.load(t, k)).catch(
          fail("load"),
        ),
      save: (t, k, v, rev) =>
        this.internal("keyhold.store.save", { "keyhold.entity.type": t }, () =>
          store.save(t, k, v, rev),
        ).catch(fail("save")),
      close: () => store.close(),
    };
  }
}

/** error.type: the error's stable code when it has one, else its class name. */
export function errorType(err: unknown): string {
  if (typeof err === "string") return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? code : err.name;
  }
  return "_OTHER";
}
