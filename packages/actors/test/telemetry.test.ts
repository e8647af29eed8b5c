// Telemetry on the simulated bus, with providers passed in (no globals): options are validated,
// nothing is emitted unless enabled, an ask is a CLIENT span with the activation inside it, a
// failed ask records error.type on the span and the duration histogram, and no metric carries
// an entity key.

import { Entity } from "@keyhold/actors";
import { InvalidOptionError } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { context, metrics, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
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
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Counter, drive, startOn } from "./support.js";

const manager = new AsyncLocalStorageContextManager();
beforeAll(() => {
  context.setGlobalContextManager(manager.enable());
});
afterAll(() => {
  manager.disable();
  context.disable();
});

function providers() {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const collect = async () => {
    await reader.forceFlush();
    const out = new Map<string, { value: unknown; attributes: Record<string, unknown> }[]>();
    for (const s of exporter.getMetrics().at(-1)?.scopeMetrics ?? [])
      for (const m of s.metrics) out.set(m.descriptor.name, m.dataPoints as never);
    return out;
  };
  return { spans, tracerProvider, meterProvider, collect };
}

describe("telemetry options", () => {
  it("rejects a bad telemetry option, naming it", async () => {
    const bus = new SimBus(new VirtualClock());
    for (const [telemetry, name] of [
      [5, "telemetry"],
      [{ enabled: "yes" }, "telemetry.enabled"],
      [{ enabled: true, tracerProvider: {} }, "telemetry.tracerProvider"],
      [{ enabled: true, meterProvider: { getMeter: 1 } }, "telemetry.meterProvider"],
    ] as const) {
      const err = await startOn(bus, "a", { telemetry: telemetry as never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as InvalidOptionError).message).toContain(name);
    }
  });
});

describe("telemetry", () => {
  it("emits nothing unless enabled, even with global providers registered", async () => {
    const bus = new SimBus(new VirtualClock());
    const p = providers();
    trace.setGlobalTracerProvider(p.tracerProvider);
    metrics.setGlobalMeterProvider(p.meterProvider);
    try {
      const a = await startOn(bus, "a");
      expect(await drive(bus, a.ref(Counter, "k").add(1))).toBe(1);
      expect(p.spans.getFinishedSpans()).toHaveLength(0);
      expect((await p.collect()).size).toBe(0);
      await drive(bus, a.close());
    } finally {
      trace.disable();
      metrics.disable();
    }
  });

  it("an ask is a CLIENT span with the activation inside; failures carry error.type; keys stay off metrics", async () => {
    const bus = new SimBus(new VirtualClock());
    const p = providers();
    const telemetry = { enabled: true, tracerProvider: p.tracerProvider, meterProvider: p.meterProvider };
    const a = await startOn(bus, "a", { telemetry });
    expect(await drive(bus, a.ref(Counter, "k1").add(2))).toBe(2);
    await expect(drive(bus, a.ref(Counter, "k1").fail("no"))).rejects.toThrow("no");

    const spans = p.spans.getFinishedSpans();
    const clients = spans.filter((s) => s.kind === 2);
    expect(clients.map((s) => s.name)).toEqual(["counter/add", "counter/fail"]);
    expect(clients[0]?.attributes).toMatchObject({
      "rpc.system.name": "keyhold",
      "rpc.method": "counter/add",
      "keyhold.entity.key": "k1",
    });
    expect(clients[0]?.status.code).not.toBe(2);
    expect(clients[1]?.status.code).toBe(2); // ERROR
    expect(clients[1]?.attributes["error.type"]).toBe("KH_HANDLER_FAILED");
    const activation = spans.find((s) => s.name === "keyhold.activate");
    expect(activation?.parentSpanContext?.spanId).toBe(clients[0]?.spanContext().spanId);
    expect(activation?.spanContext().traceId).toBe(clients[0]?.spanContext().traceId);

    const m = await p.collect();
    const calls = m.get("rpc.client.call.duration") ?? [];
    expect(calls.map((d) => [d.attributes["error.type"], (d.value as { count: number }).count])).toEqual([
      [undefined, 1],
      ["KH_HANDLER_FAILED", 1],
    ]);
    expect(m.get("keyhold.entities.active")?.[0]).toMatchObject({
      value: 1,
      attributes: { "keyhold.entity.type": "counter" },
    });
    expect(m.get("keyhold.entity.activations")?.[0]?.value).toBe(1);
    expect(m.get("keyhold.members")?.[0]?.value).toBe(1);
    expect(m.get("keyhold.partitions.owned")?.[0]?.value).toBe(a.node.config.ringSize);
    for (const [name, points] of m)
      for (const d of points) expect(Object.keys(d.attributes), name).not.toContain("keyhold.entity.key");
    await drive(bus, a.close());
  });

  it("a message that waited for a turn keeps its own trace: its activation is under its caller's span", async () => {
    const bus = new SimBus(new VirtualClock());
    const p = providers();
    const telemetry = { enabled: true, tracerProvider: p.tracerProvider, meterProvider: p.meterProvider };
    // One turn for the whole node: the counter's first message waits until the gate opens, and
    // is then pumped from the end of the gate's handler, in the gate ask's async context.
    const a = await startOn(bus, "a", { telemetry, concurrency: 1, entities: [Counter, Gate] });
    const held = a.ref(Gate, "g").hold();
    await drive(bus, new Promise<void>((r) => (Gate.opened = r)));
    const waited = a.ref(Counter, "k2").add(5);
    await bus.clock.advance(5);
    Gate.open();
    expect(await drive(bus, Promise.all([held, waited]))).toEqual(["open", 5]);

    const spans = p.spans.getFinishedSpans();
    const add = spans.find((s) => s.kind === 2 && s.name === "counter/add");
    const gate = spans.find((s) => s.kind === 2 && s.name === "gate/hold");
    const activation = spans.find(
      (s) => s.name === "keyhold.activate" && s.attributes["keyhold.entity.key"] === "k2",
    );
    expect(add && gate && activation).toBeTruthy();
    expect(activation?.spanContext().traceId).toBe(add?.spanContext().traceId);
    expect(activation?.spanContext().traceId).not.toBe(gate?.spanContext().traceId);
    expect(activation?.parentSpanContext?.spanId).toBe(add?.spanContext().spanId);
    await drive(bus, a.close());
  });
});

/** An entity whose one handler waits until the test opens it (holding the node's only turn). */
class Gate extends Entity<{ n: number }> {
  static readonly type = "gate";
  static #release: (() => void) | undefined;
  static opened: (() => void) | undefined;
  static open(): void {
    Gate.#release?.();
  }
  initialState() {
    return { n: 0 };
  }
  hold(): Promise<string> {
    return new Promise((resolve) => {
      Gate.#release = () => resolve("open");
      Gate.opened?.();
    });
  }
}
