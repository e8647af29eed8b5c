// OpenTelemetry across real processes: each node runs the SDK with in-memory exporters
// (traced-node.ts). An ask from one node to an entity owned by another is one trace: a CLIENT
// span on the caller, a SERVER span on the owner with the caller's span as parent (the context
// crossed in NATS headers), and the activation inside it. The metrics move with asks and with
// the hand-offs a joining node causes, and no metric carries an entity key.
import { fileURLToPath } from "node:url";
import { NatsServer, type RunningChild, spawnTs, waitFor } from "@keyhold/testing";
import { describe, expect, it } from "vitest";

const CHILD = fileURLToPath(new URL("./traced-node.ts", import.meta.url));
const CLIENT = 2;
const SERVER = 1;
const INTERNAL = 0;

interface SpanInfo {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parent: string | undefined;
  attributes: Record<string, unknown>;
}
type Metrics = Record<string, { total: number; attributes: string[] }>;

class Traced {
  #req = 0;
  readonly #pending = new Map<number, (m: { value?: unknown; error?: string }) => void>();
  private constructor(readonly child: RunningChild) {
    child.process.on("message", (m: { type: string; req: number; value?: unknown; error?: string }) => {
      if (m.type === "reply") this.#pending.get(m.req)?.(m);
    });
  }
  static async spawn(url: string, id: string): Promise<Traced> {
    const child = spawnTs(CHILD, [url, "otel", id]);
    await new Promise<void>((resolve, reject) => {
      child.process.on("message", (m: { type: string }) => m.type === "ready" && resolve());
      void child.exited.then((code) => reject(new Error(`${id} exited ${code}: ${child.logs().join("\n")}`)));
    });
    return new Traced(child);
  }
  call<T>(cmd: string, extra: Record<string, unknown> = {}): Promise<T> {
    const req = this.#req++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(req, (m) => {
        this.#pending.delete(req);
        if (m.error !== undefined) reject(new Error(m.error));
        else resolve(m.value as T);
      });
      this.child.process.send({ req, cmd, ...extra });
    });
  }
  spans = () => this.call<SpanInfo[]>("spans");
  metrics = () => this.call<Metrics>("metrics");
  members = () => this.call<string[]>("members");
  joining = () => this.call<boolean>("joining");
  async [Symbol.asyncDispose]() {
    await this.call("close").catch(() => {});
    this.child.process.kill("SIGKILL");
  }
}

describe("OpenTelemetry", () => {
  it("one trace across two node processes; metrics move with asks and hand-offs", async () => {
    await using server = await NatsServer.start();
    await using a = await Traced.spawn(server.url, "node-a");
    await using b = await Traced.spawn(server.url, "node-b");
    // node-b joins step by step (the default): the asks below count what each node serves and
    // activates, so they start once it owns all it wins (no hand-off moves entities under them).
    await waitFor(
      async () =>
        (await a.members()).length === 2 && (await b.members()).length === 2 && !(await b.joining()),
      { timeout: 10_000, interval: 100 },
    );

    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    for (const key of keys) expect(await a.call("ask", { key })).toBe(1);

    const aSpans = await a.spans();
    const bSpans = await b.spans();
    const clients = aSpans.filter((s) => s.kind === CLIENT);
    expect(clients).toHaveLength(keys.length);
    expect(clients[0]).toMatchObject({
      name: "counter/add",
      attributes: { "rpc.system.name": "keyhold", "rpc.method": "counter/add" },
    });
    const servers = bSpans.filter((s) => s.kind === SERVER);
    expect(servers.length).toBeGreaterThan(0);
    for (const s of servers) {
      const parent = clients.find((c) => c.spanId === s.parent);
      expect(parent, `SERVER span ${s.spanId} has a CLIENT parent on node-a`).toBeDefined();
      expect(s.traceId).toBe(parent?.traceId);
      expect(s.attributes["keyhold.entity.key"]).toBe(parent?.attributes["keyhold.entity.key"]);
      // The entity activated inside the served ask, in the same trace.
      const activation = bSpans.find(
        (x) => x.kind === INTERNAL && x.name === "keyhold.activate" && x.parent === s.spanId,
      );
      expect(activation?.traceId).toBe(s.traceId);
    }

    const am = await a.metrics();
    const bm = await b.metrics();
    expect(am["rpc.client.call.duration"]?.total).toBe(keys.length);
    expect(bm["rpc.server.call.duration"]?.total).toBe(servers.length);
    expect(am["keyhold.members"]?.total).toBe(2);
    const active = (am["keyhold.entities.active"]?.total ?? 0) + (bm["keyhold.entities.active"]?.total ?? 0);
    expect(active).toBe(keys.length);
    expect(bm["keyhold.entity.activations"]?.total).toBe(servers.length);
    const owned = (am["keyhold.partitions.owned"]?.total ?? 0) + (bm["keyhold.partitions.owned"]?.total ?? 0);
    expect(owned).toBeGreaterThan(0);

    // A third node joins: partitions move to it, with their entities.
    await using c = await Traced.spawn(server.url, "node-c");
    await waitFor(async () => ((await c.metrics())["keyhold.handoff.duration"]?.total ?? 0) > 0, {
      timeout: 15_000,
      interval: 100,
    });
    await waitFor(async () => ((await a.metrics())["keyhold.rebalances"]?.total ?? 0) >= 1, {
      timeout: 10_000,
      interval: 100,
    });
    // The metrics below are read once node-c's last step is done.
    await waitFor(async () => !(await c.joining()), { timeout: 15_000, interval: 100 });
    const cm = await c.metrics();
    expect(cm["keyhold.members"]?.total).toBe(3);
    expect(cm["keyhold.partitions.owned"]?.total).toBeGreaterThan(0);
    expect((await c.spans()).some((s) => s.name === "keyhold.handoff" && s.kind === INTERNAL)).toBe(true);
    const moved = (await a.metrics())["keyhold.partitions.moved"]?.total ?? 0;
    expect(moved).toBeGreaterThan(0);

    // Keys are on spans only.
    for (const m of [am, bm, cm]) {
      for (const [name, { attributes }] of Object.entries(m)) {
        expect(attributes, name).not.toContain("keyhold.entity.key");
      }
    }
  });
});
