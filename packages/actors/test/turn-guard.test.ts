// The turn guard (turn-guard.ts) with a fake clock: hand-overs run at once within the slice,
// then wait for a turn of the event loop, in order. The flood on a real nats-server is in
// turn-guard.integration.test.ts.
import { describe, expect, it } from "vitest";
import { TurnGuard } from "../src/turn-guard.js";

const immediate = () => new Promise<void>((r) => setImmediate(r));

describe("TurnGuard", () => {
  it("runs hand-overs at once until the slice has passed, then defers them in order", async () => {
    let now = 0;
    const g = new TurnGuard(10, () => now);
    const ran: number[] = [];
    const hand = (i: number) => (g.pass() ? ran.push(i) : g.defer(() => ran.push(i)));
    for (let i = 0; i < 300; i++) hand(i); // 256 checks at time 0: within the slice
    expect(ran.length).toBe(300);
    now = 11;
    for (let i = 300; i < 600; i++) hand(i);
    // The 256th hand-over since the last look found the slice over: it and all later wait.
    const ranNow = ran.length;
    expect(ranNow).toBeLessThan(600);
    expect(g.yields).toBe(1);
    await immediate();
    expect(ran).toEqual(Array.from({ length: 600 }, (_, i) => i));
  });

  it("keeps the order when a deferred queue trips the slice again while it runs", async () => {
    let now = 0;
    const g = new TurnGuard(5, () => now);
    const ran: number[] = [];
    const hand = (i: number) => (g.pass() ? ran.push(i) : g.defer(() => ran.push(i)));
    now = 6;
    for (let i = 0; i < 1000; i++) hand(i);
    expect(ran.length).toBe(255); // the 256th check tripped
    // While the flush runs, the clock jumps past the slice: the flush's own hand-overs are
    // not checked (they were deferred already), but new ones queue behind them.
    now = 100;
    await immediate();
    for (let i = 1000; i < 1600; i++) hand(i);
    await immediate();
    await immediate();
    expect(ran).toEqual(Array.from({ length: 1600 }, (_, i) => i));
  });

  it("refuses a slice that is not positive", () => {
    expect(() => new TurnGuard(0)).toThrow(/sliceMs must be > 0, got 0/);
    expect(() => new TurnGuard(Number.NaN)).toThrow(/sliceMs/);
  });
});
