// A Sharding node in its own process with the OpenTelemetry SDK set up like examples/observe
// (docs/how-to/observe.md), exporting to memory; the test drives it over IPC and reads back
// its finished spans and collected metrics. argv: NATS URL, cluster, node id.
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { setUpTelemetry } from "../../examples/observe/src/otel.js";
import { Counter } from "../fixtures/entities.js";

const [url, cluster, nodeId] = process.argv.slice(2);
if (!url || !cluster || !nodeId) throw new Error("usage: traced-node.ts URL CLUSTER NODE_ID");

// The example's set-up: globals registered, in-memory exporters.
const telemetry = setUpTelemetry();

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
  | { req: number; cmd: "members" | "joining" | "spans" | "metrics" | "close" };

async function answer(m: Command): Promise<unknown> {
  switch (m.cmd) {
    case "ask":
      return sharding.ask(Counter, m.key, "add", [1]);
    case "members":
      return sharding.node.members();
    case "joining": // still joining step by step (joinStepPartitions "auto", the default)
      return sharding.node.joinFront !== undefined;
    case "spans":
      return telemetry.finishedSpans().map((s) => ({
        name: s.name,
        kind: s.kind,
        traceId: s.spanContext().traceId,
        spanId: s.spanContext().spanId,
        parent: s.parentSpanContext?.spanId,
        attributes: s.attributes,
      }));
    case "metrics": {
      const out: Record<string, { total: number; attributes: string[] }> = {};
      for (const metric of await telemetry.collect()) {
        let total = 0;
        const attributes = new Set<string>();
        for (const p of metric.dataPoints as { value: unknown; attributes: Record<string, unknown> }[]) {
          const v = p.value;
          total += typeof v === "number" ? v : (v as { count: number }).count;
          for (const k of Object.keys(p.attributes)) attributes.add(k);
        }
        out[metric.descriptor.name] = { total, attributes: [...attributes] };
      }
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
