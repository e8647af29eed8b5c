// Opening the KV store: a JetStream API timeout (a replicated bucket still being placed on a
// loaded cluster) is retried, twice at most; any other error fails at once.
import type { KV } from "@nats-io/kv";
import { describe, expect, it } from "vitest";
import { createBucket } from "../src/kv-store.js";

function timeout(): Error {
  const e = new Error("timeout");
  e.name = "TimeoutError";
  return e;
}

function kvm(failures: Error[]) {
  const calls: unknown[] = [];
  const bucket = {} as KV;
  return {
    calls,
    bucket,
    create: async (name: string, opts: unknown) => {
      calls.push([name, opts]);
      const f = failures.shift();
      if (f) throw f;
      return bucket;
    },
  };
}

describe("opening the KV bucket", () => {
  it("retries a timeout, with the same config each time", async () => {
    const k = kvm([timeout(), timeout()]);
    expect(await createBucket(k, "b", 3)).toBe(k.bucket);
    expect(k.calls).toHaveLength(3);
    expect(new Set(k.calls.map((c) => JSON.stringify(c))).size).toBe(1);
  });

  it("gives up after three timeouts", async () => {
    const k = kvm([timeout(), timeout(), timeout()]);
    await expect(createBucket(k, "b", 3)).rejects.toThrow("timeout");
    expect(k.calls).toHaveLength(3);
  });

  it("does not retry another error (no JetStream, another config)", async () => {
    const k = kvm([new Error("no responders")]);
    await expect(createBucket(k, "b", 1)).rejects.toThrow("no responders");
    expect(k.calls).toHaveLength(1);
  });
});
