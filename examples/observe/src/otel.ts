// The OpenTelemetry set-up of an application that uses Keyhold: a context manager (so spans
// started inside a handler or an activation find their parent), the W3C trace-context
// propagator (what Keyhold writes into NATS headers), a tracer provider and a meter provider,
// all registered globally. Keyhold only needs `telemetry: { enabled: true }`.
//
// This example exports to memory so it can print what it saw; in production, put an OTLP
// exporter in their place (for example `OTLPTraceExporter` from
// @opentelemetry/exporter-trace-otlp-http in a BatchSpanProcessor, and `OTLPMetricExporter`
// in the PeriodicExportingMetricReader).
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

export function setUpTelemetry() {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());

  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  trace.setGlobalTracerProvider(tracerProvider);

  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({
    exporter: metricExporter,
    exportIntervalMillis: 60_000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(meterProvider);

  return {
    finishedSpans: () => spans.getFinishedSpans(),
    /** Collects now; the newest export's metrics. */
    async collect() {
      await reader.forceFlush();
      return (
        metricExporter
          .getMetrics()
          .at(-1)
          ?.scopeMetrics.flatMap((s) => s.metrics) ?? []
      );
    },
    async shutdown() {
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
    },
  };
}
