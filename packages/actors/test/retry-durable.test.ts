// Without group commit, a retried ask that its owner answers from the entity's recent asks (the
// ask id is remembered inside the entity record) must make the current state durable again
// before it answers (handler.ts). The first write may have applied the ask in memory and then
// missed its replica quorum; the router retries a QuorumError with the same id (router.ts), and
// answering that retry from memory alone would acknowledge a write no replica holds, which the
// next owner never sees once the primary dies.
import { Entity, nodeSubject, QuorumError, type Sharding } from "@keyhold/actors";
import { RequestFailedError } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { expect, it } from "vitest";
import { drive, HB, startOn, TTL } from "./support.js";

class Vault extends Entity<{ n: number }> {
  static readonly type = "vault";
  static readonly replicas = 3;
  initialState() {
    return { n: 0 };
  }
  add(x: number) {
    this.state.n += x;
    return this.state.n;
  }
  get() {
    return this.state.n;
  }
}

type Requester = { request: (s: string, d: Uint8Array, o?: unknown) => Promise<Uint8Array> };

/** Makes every request of `s` to one of `cut` fail at once, until the returned function runs. */
function cutReplicas(s: Sharding, cut: readonly string[]): () => void {
  const t = s.node.transport as unknown as Requester;
  const request = t.request.bind(t);
  const subjects = new Set(cut.map((id) => nodeSubject("rd", id)));
  t.request = (subject, data, o) =>
    subjects.has(subject)
      ? Promise.reject(new RequestFailedError("timeout", subject))
      : request(subject, data, o);
  return () => {
    t.request = request;
  };
}

it("groupCommit: false, a retry answered from the recent asks re-persists first: its effect survives the primary's crash", async () => {
  const bus = new SimBus(new VirtualClock());
  const opts = { cluster: "rd", entities: [Vault], groupCommit: false, askTimeoutMs: 5000 };
  const nodes = [await startOn(bus, "a", opts), await startOn(bus, "b", opts), await startOn(bus, "c", opts)];
  const client = await startOn(bus, "cl", opts, true);
  const key = "v1";
  const [primaryId, ...replicaIds] = client.node.owners(key, 3);
  const primary = nodes.find((n) => n.node.id === primaryId)!;
  const restore = cutReplicas(primary, replicaIds);
  const retriesBefore = client.stats().router.retries;
  const asked = client.ref(Vault, key).add(5);
  asked.catch(() => {});
  // The first write applies the ask in memory, misses its quorum (both replicas unreachable)
  // and fails with QuorumError; the router retries the same id while the replicas stay cut.
  await bus.clock.advance(60);
  expect(primary.stats().replication.quorumFailures).toBeGreaterThanOrEqual(1);
  expect(client.stats().router.retries).toBeGreaterThan(retriesBefore);
  restore();
  // A retry now reaches the primary, which finds the id among the entity's recent asks.
  expect(await drive(bus, asked)).toBe(5);
  // The primary dies at once: the answered write must be on a replica.
  await drive(bus, primary.node.transport.close());
  await bus.clock.advance(TTL + 3 * HB);
  expect(client.node.members()).not.toContain(primaryId);
  expect(await drive(bus, client.ref(Vault, key).get())).toBe(5);
  for (const n of [...nodes.filter((n) => n !== primary), client]) await drive(bus, n.close());
});

it("groupCommit: false, a retry that still misses its quorum is not answered from the recent asks; the QuorumError comes at the deadline", async () => {
  const bus = new SimBus(new VirtualClock());
  const opts = { cluster: "rd", entities: [Vault], groupCommit: false, askTimeoutMs: 1000 };
  const nodes = [await startOn(bus, "a", opts), await startOn(bus, "b", opts), await startOn(bus, "c", opts)];
  const client = await startOn(bus, "cl", opts, true);
  const key = "v2";
  const [primaryId, ...replicaIds] = client.node.owners(key, 3);
  const primary = nodes.find((n) => n.node.id === primaryId)!;
  cutReplicas(primary, replicaIds);
  // Every retry re-persists and misses the quorum again: the caller gets the QuorumError at the
  // ask's deadline, never a success no replica holds.
  const out = await drive(bus, client.ref(Vault, key).add(5)).catch((e: unknown) => e);
  expect(out).toBeInstanceOf(QuorumError);
  expect(primary.stats().replication.quorumFailures).toBeGreaterThanOrEqual(3);
  for (const n of [...nodes, client]) await drive(bus, n.close());
});
