// A message buffered while its partition is pending is replayed in the context it arrived in
// (with telemetry on, its trace), not in the context of whatever ends the pending state.
import { silentLogger } from "@keyhold/core";
import { describe, expect, it } from "vitest";
import { PartitionStates } from "../src/partitions.js";

/** A minimal stand-in for a context manager: one current value, set for the length of `within`. */
function contexts() {
  let current = "root";
  return {
    get current() {
      return current;
    },
    capture: (): unknown => current,
    within<R>(ctx: unknown, fn: () => R): R {
      const prev = current;
      current = ctx as string;
      try {
        return fn();
      } finally {
        current = prev;
      }
    },
  };
}

describe("the pending-partition buffer", () => {
  it("replays each buffered message in the context it was buffered in", () => {
    const c = contexts();
    const parts = new PartitionStates({ bufferLimit: 10, logger: silentLogger, nodeId: "a", context: c });
    const seen: string[] = [];
    c.within("ask-1", () => parts.buffer(7, () => seen.push(c.current)));
    c.within("ask-2", () => parts.buffer(7, () => seen.push(c.current)));
    const st = parts.get(7);
    expect(st?.s).toBe("pending");
    c.within("handoff", () => {
      for (const retry of (st as { buffer: (() => void)[] }).buffer) retry();
    });
    expect(seen).toEqual(["ask-1", "ask-2"]);
    expect(c.current).toBe("root");
  });

  it("without a context (telemetry off) buffers the message as it is", () => {
    const parts = new PartitionStates({ bufferLimit: 1, logger: silentLogger, nodeId: "a" });
    const retry = () => {};
    expect(parts.buffer(2, retry)).toBe(true);
    expect((parts.get(2) as { buffer: (() => void)[] }).buffer[0]).toBe(retry);
    expect(parts.buffer(2, retry)).toBe(false); // the limit still holds
  });
});
