// The router follows a "moved" reply's owner at once (issue 10, hand-off without stalls): while
// the asker's ring still names the node that answered "moved", the retry goes to the owner that
// node named, with the same id, and without a backoff sleep. The clock here is virtual and never
// advanced, so an ask that slept before its retry would not settle.
import type { ShardNode, Transport } from "@keyhold/core";
import { VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import type { BatchAttempt, Batcher } from "../src/batch.js";
import { Router } from "../src/router.js";
import { decodeRequest, nodeSubject } from "../src/wire.js";

/** A batcher that answers every attempt from `answer(node, id)`, and records where each went. */
function fakeBatcher(answer: (node: string) => unknown) {
  const sent: { node: string; id: string }[] = [];
  const batcher = {
    attach(subject: string, data: Uint8Array, _ms: number, a: BatchAttempt) {
      const node = subject.slice(subject.lastIndexOf(".") + 1);
      const msg = decodeRequest(data) as { id: string };
      sent.push({ node, id: msg.id });
      queueMicrotask(() => a.onReply(answer(node) as never));
    },
    start(subject: string, data: Uint8Array, ms: number) {
      let resolve!: (v: unknown) => void;
      const promise = new Promise((r) => (resolve = r));
      batcher.attach(subject, data, ms, { onReply: resolve, onFail: resolve } as never);
      return { promise, cancel: () => {} };
    },
    cancelSubject() {},
    cancelWhere() {},
    send() {},
  };
  return { batcher: batcher as unknown as Batcher, sent };
}

function router(owner: string, answer: (node: string) => unknown, members = ["a", "b"]) {
  const clock = new VirtualClock();
  const node = {
    id: "client",
    place: () => owner,
    departed: () => [],
    members: () => members,
    async *events() {},
  } as unknown as ShardNode;
  const { batcher, sent } = fakeBatcher(answer);
  const r = new Router({
    node,
    transport: {} as Transport,
    cluster: "t",
    clock,
    deadlines: undefined as never,
    askTimeoutMs: 5000,
    attemptTimeoutMs: 1000,
    batcher,
    local: undefined,
  });
  return { r, sent };
}

describe("router and moved replies", () => {
  it("retries at the owner a moved reply names, at once and with the same id", async () => {
    // Our view says "a"; "a" is leaving and names "b", which serves.
    const { r, sent } = router("a", (n) =>
      n === "a" ? { v: 1, k: "moved", owner: "b" } : { v: 1, k: "ok", r: `from ${n}` },
    );
    await expect(r.ask("Counter", "k1", "add", [1])).resolves.toBe("from b");
    expect(sent.map((s) => s.node)).toEqual(["a", "b"]);
    expect(sent[1]!.id).toBe(sent[0]!.id);
    expect(nodeSubject("t", "b").endsWith(".b")).toBe(true);
  });

  it("does not follow a hint to a node that is not a member in its view (a crashed one)", async () => {
    const { r, sent } = router(
      "a",
      (n) => (n === "a" ? { v: 1, k: "moved", owner: "dead" } : { v: 1, k: "ok", r: n }),
      ["a"],
    );
    void r.ask("Counter", "k3", "add", [1]).catch(() => {});
    for (let i = 0; i < 20; i++) await new Promise((res) => setImmediate(res));
    expect(sent.map((s) => s.node)).toEqual(["a"]); // backing off, not waiting on "dead"
    r.close();
  });

  it("does not bounce between two nodes that name each other: it backs off instead", async () => {
    const { r, sent } = router("a", (n) => ({ v: 1, k: "moved", owner: n === "a" ? "b" : "a" }));
    void r.ask("Counter", "k2", "add", [1]).catch(() => {});
    for (let i = 0; i < 20; i++) await new Promise((res) => setImmediate(res));
    // a, then b once (its answer names "a", the node that said moved: not followed), then the
    // backoff, which the virtual clock never ends.
    expect(sent.map((s) => s.node)).toEqual(["a", "b"]);
    r.close();
  });
});
