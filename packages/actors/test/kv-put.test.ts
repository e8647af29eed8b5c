// The lean KV update (kv-put.ts): its acknowledgement parsing, and natsKvStore's conditional
// writes through it against a real JetStream (a stale revision is a StoreConflictError, as it was
// with nats.js's kv.update).
import { NatsServer } from "@keyhold/testing";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { StoreConflictError } from "../src/errors.js";
import { parsePutAck, WRONG_LAST_SEQUENCE } from "../src/kv-put.js";
import { natsKvStore } from "../src/kv-store.js";

const bytes = (s: string) => new TextEncoder().encode(s);

describe("parsePutAck", () => {
  it("reads the stored sequence", () => {
    expect(parsePutAck(bytes('{"stream":"KV_b","seq":42}'))).toEqual({ seq: 42 });
    expect(parsePutAck(bytes('{"stream":"KV_b","domain":"d","seq":7,"duplicate":false}'))).toEqual({
      seq: 7,
    });
  });

  it("reads the server's error with its code", () => {
    const a = parsePutAck(
      bytes(
        '{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"KV_b","seq":0}',
      ),
    );
    expect(a.seq).toBeUndefined();
    expect(a.error?.code).toBe(WRONG_LAST_SEQUENCE);
    expect(a.error?.text).toMatch(/wrong last sequence: 3/);
  });

  it("turns anything else into an error, never a sequence", () => {
    for (const s of [
      "",
      "nope",
      "null",
      "[]",
      '{"seq":3}',
      '{"stream":"KV_b"}',
      '{"stream":"","seq":1}',
      '{"stream":"x","seq":0}',
    ])
      expect(parsePutAck(bytes(s)).error?.code).toBe(0);
  });
});

describe("natsKvStore updates", () => {
  it("writes at the last revision, refuses a stale one, and loads the newest", async () => {
    await using srv = await NatsServer.start({ jetstream: true });
    const nc = await connect({ servers: srv.url });
    try {
      const store = await natsKvStore({ bucket: `kvput_${process.pid}`, timeoutMs: 2000 }).open({
        connection: nc,
      });
      const r1 = await store.save("t", "k/1", { state: { n: 1 }, version: 1 }, undefined);
      const r2 = await store.save("t", "k/1", { state: { n: 2 }, version: 2, acq: 3 }, r1);
      expect(r2).toBeGreaterThan(r1);
      // A writer that still holds r1 (another node took over meanwhile) is refused.
      await expect(store.save("t", "k/1", { state: { n: 9 }, version: 9 }, r1)).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      // So is one with a revision the key never had.
      await expect(store.save("t", "k/1", { state: { n: 9 }, version: 9 }, r2 + 100)).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      const r3 = await store.save(
        "t",
        "k/1",
        { state: { n: 3 }, version: 3, acq: 3, recent: [["id-00001", true, 3]] },
        r2,
      );
      const got = await store.load("t", "k/1");
      expect(got).toMatchObject({
        state: { n: 3 },
        version: 3,
        revision: r3,
        acq: 3,
        recent: [["id-00001", true, 3]],
      });
      // Another key's revisions are its own: an update of it at k/1's revision is refused.
      const o1 = await store.save("t", "other", { state: 0, version: 1 }, undefined);
      await expect(store.save("t", "other", { state: 1, version: 2 }, r3)).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      expect(await store.save("t", "other", { state: 1, version: 2 }, o1)).toBeGreaterThan(o1);
      await store.close();
    } finally {
      await nc.close();
    }
  }, 30_000);
});
