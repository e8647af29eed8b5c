// OpenTelemetry with Keyhold: two nodes in this process (each with its own NATS connection), a
// client asking counters on both. Every ask is a CLIENT span on the client; an ask served by a
// node is a SERVER span there, child of the client's span through the traceparent header the
// ask carried over NATS, with the entity's activation inside it. Then the node metrics.
// Run: npm start -w @keyhold/example-observe   (uses NATS_URL, or starts its own nats-server)
import { Entity, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer } from "@keyhold/testing";
import { SpanKind } from "@opentelemetry/api";
import { setUpTelemetry } from "./otel.js";

const telemetry = setUpTelemetry();

class Counter extends Entity<{ n: number }> {
  static readonly type = "counter";
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
}

const server = process.env.NATS_URL ? undefined : await NatsServer.start();
const servers = process.env.NATS_URL ?? server!.url;
const common = {
  servers,
  cluster: `observe-example-${process.pid}`,
  heartbeatMs: 200,
  ttlMs: 600,
  skewMs: 500,
  logger: silentLogger,
  entities: [Counter],
  telemetry: { enabled: true },
};
const nodes = await Promise.all(["node-a", "node-b"].map((nodeId) => Sharding.start({ ...common, nodeId })));
const client = await Sharding.connect(common);
while (client.node.members().length < 2) await new Promise((r) => setTimeout(r, 20));

for (let i = 0; i < 20; i++) await client.ref(Counter, `user-${i}`).add(1);

// One ask, as a trace: the client's span, the node's span under it, the activation under that.
const spans = telemetry.finishedSpans();
const kinds = ["INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];
const first = spans.find((s) => s.kind === SpanKind.SERVER);
if (!first) throw new Error("no SERVER span: the trace context did not cross NATS");
const trace = spans.filter((s) => s.spanContext().traceId === first.spanContext().traceId);
const depth = (s: (typeof spans)[number]): number => {
  const parent = trace.find((p) => p.spanContext().spanId === s.parentSpanContext?.spanId);
  return parent ? depth(parent) + 1 : 0;
};
console.log(`trace ${first.spanContext().traceId}:`);
for (const s of [...trace].sort((x, y) => depth(x) - depth(y))) {
  const key = s.attributes["keyhold.entity.key"];
  console.log(`${"  ".repeat(depth(s) + 1)}${kinds[s.kind]} ${s.name}${key ? ` key=${key}` : ""}`);
}
const sameTrace = spans
  .filter((s) => s.kind === SpanKind.SERVER)
  .every((srv) => {
    const parent = spans.find((c) => c.spanContext().spanId === srv.parentSpanContext?.spanId);
    return parent?.kind === SpanKind.CLIENT && parent.spanContext().traceId === srv.spanContext().traceId;
  });
console.log(`every SERVER span has its CLIENT span as parent: ${sameTrace}`);

// The metrics, summed over their data points (histograms: how many calls they counted).
for (const m of await telemetry.collect()) {
  let total = 0;
  for (const p of m.dataPoints as { value: number | { count: number } }[])
    total += typeof p.value === "number" ? p.value : p.value.count;
  console.log(`metric ${m.descriptor.name} = ${total}`);
}

await client.close();
await Promise.all(nodes.map((n) => n.close()));
await telemetry.shutdown();
await server?.close();
console.log("ok");
