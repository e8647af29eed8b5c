// Entities across real processes: 1,000 keys from a client process, each served by exactly
// one live instance on one of three node processes.
import { NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Counter } from "../fixtures/entities.js";
import { connectClient, spawnNode } from "./support.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

describe("entities over NATS with node processes", () => {
  it("messages to 1,000 keys from a client process each reach one live instance", async () => {
    const srv = await NatsServer.start();
    cleanup.push(() => srv.close());
    const nodes: ShardingProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const n = await spawnNode(srv.url, "route");
      nodes.push(n);
      cleanup.push(() => n.kill());
    }
    const client = await connectClient(srv.url, "route");
    cleanup.push(() => client.close());
    // Nodes join step by step by default: wait until no member is capped (its last step is seen).
    await waitFor(() => client.node.members().length === 3 && client.node.ring.caps.size === 0, {
      message: "client sees 3 members, all uncapped",
    });
    const keys = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
    for (let round = 0; round < 2; round++) {
      await Promise.all(keys.map((k) => client.ref(Counter, k).add(1)));
    }
    const pids = new Set(nodes.map((n) => n.pid));
    const perPid = new Map<number, number>();
    const wheres = await Promise.all(keys.map((k) => client.ref(Counter, k).where()));
    for (const w of wheres) {
      expect(w.n).toBe(2);
      expect(w.activations).toBe(1);
      expect(pids.has(w.pid)).toBe(true);
      perPid.set(w.pid, (perPid.get(w.pid) ?? 0) + 1);
    }
    expect(perPid.size).toBe(3); // every node hosts some keys
    const known = (await Promise.all(nodes.map((n) => n.state()))).map((s) => s.stats.host.known);
    expect(known.reduce((a, b) => a + b, 0)).toBe(1000); // no key hosted twice
    // an ask sent from inside a node process reaches the same instance
    const r = await nodes[0]!.ask("counter", "user-7", "get");
    expect(r).toEqual({ ok: true, result: 2 });
  });
});
