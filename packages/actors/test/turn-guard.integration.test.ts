// A flood of local asks, which settle through promises alone, on one node on a real
// nats-server for longer than its lease: the turn guard (turn-guard.ts) must give the event
// loop turns often enough that the heartbeat runs and the node does not fence itself because of
// its own caller. Without the guard the 50 ms timer below ticked once in 800 ms and the node
// fenced.
import { Entity, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

class Tally extends Entity<{ n: number }> {
  static readonly type = "tally";
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
}

describe("a flood of local asks on a real nats-server", () => {
  let srv: NatsServer;
  beforeAll(async () => {
    srv = await NatsServer.start();
  }, 30_000);
  afterAll(async () => {
    await srv?.close();
  });

  it("lets the heartbeat run: the node does not fence itself and every ask is answered in order", async () => {
    await using node = await Sharding.start({
      servers: srv.url,
      cluster: "flood",
      nodeId: "solo",
      heartbeatMs: 200,
      ttlMs: 1000,
      skewMs: 200,
      logger: silentLogger,
      entities: [Tally],
      leases: "echo",
    });
    await waitFor(() => node.node.ownedPartitions().length === node.node.config.ringSize, {
      message: "the node owns every partition",
    });
    const t0 = performance.now();
    let asks = 0;
    let ticks = 0;
    let fenced = false;
    const ac = new AbortController();
    void (async () => {
      for await (const e of node.node.events({ signal: ac.signal }))
        if (e.type === "fenced") {
          fenced = true;
          console.log("FENCED at", Math.round(performance.now() - t0), "ticks", ticks, "asks", asks);
        }
    })().catch(() => {});
    const tick = setInterval(() => ticks++, 50);
    // 64 callers, each adding to its own 8 keys in turn, for 2.5 s: more than the lease
    // (ttl 1000 - skew 200). Every answer must be the next value of its key.
    let wrong = 0;
    const caller = async (c: number) => {
      const seen = new Map<string, number>();
      while (performance.now() - t0 < 2_500) {
        const key = `c${c}-${asks % 8}`;
        const n = (await node.ask(Tally, key, "add", [1])) as number;
        if (n !== (seen.get(key) ?? 0) + 1) wrong++;
        seen.set(key, n);
        asks++;
      }
    };
    await Promise.all(Array.from({ length: 64 }, (_, c) => caller(c)));
    clearInterval(tick);
    ac.abort();
    const ms = performance.now() - t0;
    expect(asks).toBeGreaterThan(1_000);
    expect(wrong).toBe(0);
    expect(fenced, "the node fenced itself during the flood").toBe(false);
    expect(node.node.fenced).toBe(false);
    // A 50 ms timer over 2.5 s ticks about 50 times when the loop turns; without the guard it
    // ticked 0 times. At least a fifth of that, generously for a loaded machine.
    expect(ticks, `timer ticks in ${Math.round(ms)} ms`).toBeGreaterThanOrEqual(Math.floor(ms / 50 / 5));
  }, 30_000);
});
