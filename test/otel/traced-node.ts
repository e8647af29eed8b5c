// A Sharding node in its own process with the OpenTelemetry SDK set up the way
// docs/how-to/observe.md shows, exporting to memory; the test drives it over IPC and reads back
// its finished spans and collected metrics. argv: NATS URL, cluster, node id.
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { context, metrics, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { Counter } from "../fixtures/entities.js";

const [url, cluster, nodeId] = process.argv.slice(2);
if (!url || !cluster || !nodeId) throw new Error("usage: traced-node.ts URL CLUSTER NODE_ID");

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const spans = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
const exported = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: exported, exportIntervalMillis: 3_600_000 });
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

const sharding = await Sharding.start({
  servers: url,
  cluster,
  nodeId,
  heartbeatMs: 100,
  ttlMs: 400,
  skewMs: 200,
  handoffTimeoutMs: 5000,
  entities: [Counter],
  logger: silentLogger,
  telemetry: { enabled: true },
});

type Command =
  | { req: number; cmd: "ask"; key: string }
  | { req: number; cmd: "members" | "spans" | "metrics" | "close" };

async function answer(m: Command): Promise<unknown> {
  switch (m.cmd) {
    case "ask":
      return sharding.ask(Counter, m.key, "add", [1]);
    case "members":
      return sharding.node.members();
    case "spans":
      return spans.getFinishedSpans().map((s) => ({
        name: s.name,
        kind: s.kind,
        traceId: s.spanContext().traceId,
        spanId: s.spanContext().spanId,
        parent: s.parentSpanContext?.spanId,
        attributes: s.attributes,
      }));
    case "metrics": {
      await reader.forceFlush();
      const last = exported.getMetrics().at(-1);
      const out: Record<string, { total: number; attributes: string[] }> = {};
      for (const scope of last?.scopeMetrics ?? []) {
        for (const metric of scope.metrics) {
          let total = 0;
          const attributes = new Set<string>();
          for (const p of metric.dataPoints as { value: unknown; attributes: Record<string, unknown> }[]) {
            const v = p.value;
            total += typeof v === "number" ? v : (v as { count: number }).count;
            for (const k of Object.keys(p.attributes)) attributes.add(k);
          }
          out[metric.descriptor.name] = { total, attributes: [...attributes] };
        }
      }
      exported.reset();
      return out;
    }
    case "close":
      await sharding.close();
      setTimeout(() => process.exit(0), 10);
      return true;
  }
}

process.on("message", (m: Command) => {
  answer(m).then(
    (value) => process.send?.({ type: "reply", req: m.req, value }),
    (err: unknown) => process.send?.({ type: "reply", req: m.req, error: String(err) }),
  );
});
process.send?.({ type: "ready", id: nodeId });
