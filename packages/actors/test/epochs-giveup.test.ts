// A partition given up on `stale` (fencing.ts giveUp) is taken back by the node its view still
// names the owner, however long the release's drain takes. The retake used to look once, two
// heartbeats after the give-up: a drain still running then (a handler of the partition that
// outlived it) left the partition unserved for good, since no ownership event would come;
// every ask to it timed out at its owner (issue 9, the partition tests (d) and (e)).
import { Entity, MemoryEpochs, nodeSubject, type Sharding } from "@keyhold/actors";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { Packr } from "msgpackr";
import { expect, it } from "vitest";
import { Tokened } from "./fixtures/tokened.js";
import { drive, HB, startOn } from "./support.js";

/** A handler of it waits until the test lets it go: a drain of its partition waits with it. */
let letGo: () => void = () => {};
class Held extends Entity<{ n: number }> {
  static readonly type = "held";
  initialState() {
    return { n: 0 };
  }
  async hold(): Promise<void> {
    await new Promise<void>((r) => {
      letGo = r;
    });
  }
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

it("a partition given up on stale is taken back once its release has drained, past two heartbeats", async () => {
  const bus = new SimBus(new VirtualClock());
  const shared = new MemoryEpochs();
  const node = (id: string): Promise<Sharding> =>
    startOn(bus, id, { cluster: "e", entities: [Tokened, Held], epochs: shared.source(id) });
  const nodes = [await node("a"), await node("b"), await node("c")];
  const client = await startOn(bus, "cl", { cluster: "e", entities: [Tokened, Held] }, true);
  const [primaryId, ...replicas] = client.node.owners("k", 3);
  const primary = nodes.find((n) => n.node.id === primaryId)!;
  expect(await drive(bus, client.ref(Tokened, "k").add())).toEqual([1, expect.any(Number)]);
  // Same key, so same partition: a handler of it is running when the partition is given up.
  const held = client.ref(Held, "k").hold();
  await bus.clock.advance(HB);
  // A new owner's pull fences the replicas with a newer epoch (as in epochs.test.ts).
  const p = client.node.ring.partition("k");
  const ep = await shared.source("usurper").take(p, 0);
  const raw = bus.connect("raw");
  for (const t of replicas)
    await drive(
      bus,
      raw.request(nodeSubject("e", t), packr.pack({ v: 1, k: "pull", p, from: "usurper", ep }), {
        timeout: 1000,
      }),
    );
  // The next write meets `stale`: the partition is given up, its drain waits for `hold`.
  const refused = client
    .ref(Tokened, "k")
    .add()
    .catch((e: unknown) => e);
  await bus.clock.advance(6 * HB);
  expect(primary.stats().handoff.partitionsYielded).toBe(1);
  letGo();
  await drive(bus, Promise.all([held.catch(() => {}), refused]));
  // Served again by the same node, under an epoch above the usurper's, nothing lost.
  expect(client.node.owners("k", 1)[0]).toBe(primaryId);
  const [n, token] = await drive(bus, client.ref(Tokened, "k").add());
  expect(n).toBeGreaterThanOrEqual(2);
  expect(token).toBeGreaterThan(ep);
});
