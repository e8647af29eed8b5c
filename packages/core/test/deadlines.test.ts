// Deadlines: one coarse timer for many deadlines (used by the transport and by local asks).
import { DEADLINE_TICK_MS, Deadlines } from "@keyhold/core";
import { VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";

describe("Deadlines", () => {
  it("fires each deadline once, after its time and within one tick; cancelled ones never", async () => {
    const clock = new VirtualClock();
    const d = new Deadlines(clock);
    const fired: string[] = [];
    const t0 = clock.now();
    d.add(t0 + 10, () => fired.push("a"));
    const b = d.add(t0 + 30, () => fired.push("b"));
    d.add(t0 + 60, () => fired.push("c"));
    d.cancel(b);
    await clock.advance(DEADLINE_TICK_MS);
    expect(fired).toEqual(["a"]);
    await clock.advance(DEADLINE_TICK_MS);
    expect(fired).toEqual(["a"]);
    await clock.advance(DEADLINE_TICK_MS);
    expect(fired).toEqual(["a", "c"]);
    // Nothing pending: no timer left armed.
    expect(clock.pending).toBe(0);
    await clock.advance(1000);
    expect(fired).toEqual(["a", "c"]);
  });

  it("close forgets pending deadlines without calling them", async () => {
    const clock = new VirtualClock();
    const d = new Deadlines(clock);
    let called = false;
    d.add(clock.now() + 5, () => {
      called = true;
    });
    d.close();
    await clock.advance(1000);
    expect(called).toBe(false);
    expect(clock.pending).toBe(0);
  });
});
