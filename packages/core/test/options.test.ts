// The lease rule in the options: L = ttlMs - heartbeatMs, the room it leaves for the
// check-to-effect delay with the default numbers, and configs where it cannot hold refused.
import {
  effectBudgetMs,
  InvalidOptionError,
  leaseMs,
  MAX_CLOCK_DRIFT,
  parseClusterConfig,
  parseShardNodeOptions,
  systemClock,
} from "@keyhold/core";
import { describe, expect, it } from "vitest";
import { diffConfig } from "../src/options.js";

describe("lease options", () => {
  it("the defaults leave 1990 ms between a lease check and its effect", () => {
    const c = parseClusterConfig({});
    expect([c.heartbeatMs, c.ttlMs, c.skewMs]).toEqual([2000, 6000, 5000]);
    expect(leaseMs(c)).toBe(4000);
    expect(MAX_CLOCK_DRIFT).toBe(0.001);
    // 4000·1.001 + P < 6000·0.999
    expect(effectBudgetMs(c)).toBeCloseTo(1990, 6);
  });

  it("refuses a ttl the lease cannot outlast a beat with, naming ttlMs", () => {
    expect(() => parseClusterConfig({ heartbeatMs: 100, ttlMs: 200 })).toThrow(InvalidOptionError);
    expect(() => parseClusterConfig({ heartbeatMs: 100, ttlMs: 200 })).toThrow(/`ttlMs`.*2 x heartbeatMs/);
    expect(parseClusterConfig({ heartbeatMs: 100, ttlMs: 201 }).ttlMs).toBe(201);
  });

  it("refuses a config that leaves no room for drift and the check-to-effect delay, naming heartbeatMs", () => {
    // ttl one day, heartbeat 10 ms: drift over a day (≈ 173 s) dwarfs the 10 ms margin.
    expect(() => parseClusterConfig({ heartbeatMs: 10, ttlMs: 86_400_000 })).toThrow(/`heartbeatMs`/);
    expect(() => parseClusterConfig({ heartbeatMs: 10, ttlMs: 86_400_000 })).toThrow(InvalidOptionError);
    // The same ttl with a heartbeat that leaves room is fine.
    expect(effectBudgetMs(parseClusterConfig({ heartbeatMs: 3_600_000, ttlMs: 86_400_000 }))).toBeGreaterThan(
      5,
    );
  });

  it("validates `leases`, naming the option and the value; auto is the default", () => {
    expect(parseShardNodeOptions({ cluster: "c", servers: "nats://x" }).leases).toBe("auto");
    for (const v of ["auto", "jetstream", "echo"] as const) {
      expect(parseShardNodeOptions({ cluster: "c", servers: "nats://x", leases: v }).leases).toBe(v);
    }
    const bad = () => parseShardNodeOptions({ cluster: "c", servers: "nats://x", leases: "raft" as never });
    expect(bad).toThrow(InvalidOptionError);
    expect(bad).toThrow(/`leases`.*"auto", "jetstream" or "echo".*"raft"/);
    // The config carries the mode; "auto" stays provisional ("echo") until start resolves it.
    expect(parseClusterConfig({ leases: "jetstream" }).leases).toBe("jetstream");
    expect(parseClusterConfig({ leases: "auto" }).leases).toBe("echo");
  });

  it("validates `fencingTokens`; the config check compares it only between members that both name one", () => {
    const opts = (fencingTokens?: string) =>
      parseShardNodeOptions({
        cluster: "c",
        servers: "nats://x",
        ...(fencingTokens ? { fencingTokens } : {}),
      });
    expect(opts("jetstream").config.fencingTokens).toBe("jetstream");
    expect(opts().config.fencingTokens).toBeUndefined();
    const bad = () => parseShardNodeOptions({ cluster: "c", servers: "nats://x", fencingTokens: "" });
    expect(bad).toThrow(InvalidOptionError);
    expect(bad).toThrow(/`fencingTokens`/);
    const [kv, local, none] = [opts("jetstream").config, opts("local").config, opts().config];
    expect(diffConfig(kv, local)).toEqual([
      { setting: "fencing tokens (epochs)", ours: "jetstream", theirs: "local" },
    ]);
    expect(diffConfig(kv, kv)).toEqual([]);
    expect(diffConfig(kv, none)).toEqual([]);
    expect(diffConfig(none, local)).toEqual([]);
  });

  it("refuses a clock without monoNow, naming clock", () => {
    const clock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };
    expect(() =>
      parseShardNodeOptions({ cluster: "c", transport: {} as never, clock: clock as never }),
    ).toThrow(/`clock`.*monoNow/);
  });

  it("the system clock's monotonic time never goes back", () => {
    let prev = systemClock.monoNow();
    for (let i = 0; i < 1000; i++) {
      const t = systemClock.monoNow();
      expect(t).toBeGreaterThanOrEqual(prev);
      prev = t;
    }
  });
});
