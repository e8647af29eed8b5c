// A fence too short for a take-over (issue 9, the SIGKILL failover wait): a node stalled just
// past its lease, but for less than H, fences and releases its partitions as pre-fence; a peer
// dies meanwhile. On re-acquiring, its pull misses the dead peer, and the epochs (local stamps)
// cannot prove that nobody took the partition since. It used to wait, unserved, for the dead
// peer (6 × handoffTimeoutMs); now the fence itself proves that nobody can have dropped the
// node, so it serves its own records at once. A stall past H, or a pull of the partition during
// the fence, still waits.
import type { Sharding } from "@keyhold/actors";
import { Ring } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { expect, it } from "vitest";
import { encode, nodeSubject } from "../src/wire.js";
import { Tokened } from "./fixtures/tokened.js";
import { Pausable } from "./pause.js";
import { drive, HB, startOn } from "./support.js";

interface Setup {
  bus: SimBus;
  stall: Pausable;
  a: Sharding;
  b: Sharding;
  c: Sharding;
  key: string;
  p: number;
  /** a's fenced / unfenced events, with leaseKept. */
  fences: string[];
}

async function setup(): Promise<Setup> {
  const bus = new SimBus(new VirtualClock());
  const stall = new Pausable(bus, "a");
  const a = await startOn(bus, "a", {
    cluster: "sf",
    entities: [Tokened],
    transport: stall.transport,
    clock: stall.clock,
  });
  const b = await startOn(bus, "b", { cluster: "sf", entities: [Tokened] });
  const c = await startOn(bus, "c", { cluster: "sf", entities: [Tokened] });
  const fences: string[] = [];
  void (async () => {
    for await (const e of a.node.events())
      if (e.type === "fenced") fences.push("fenced");
      else if (e.type === "unfenced") fences.push(`unfenced ${e.leaseKept}`);
  })();
  await bus.clock.advance(HB * 5);
  const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
  const key = keys.find((k) => a.node.owners(k, 1)[0] === "a")!;
  const p = a.node.ring.partition(key);
  // A first acquisition proves nothing (fence-witness.ts): a joiner takes the partition over and
  // leaves again, and a acquires it a second time.
  const d = Array.from({ length: 100 }, (_, i) => `d${i}`).find(
    (id) => new Ring(["a", id], a.node.ring.ringSize).ownerOfPartition(p) === id,
  )!;
  const joiner = await startOn(bus, d, { cluster: "sf", entities: [Tokened] });
  await bus.clock.advance(HB * 5);
  expect(a.node.ring.ownerOfPartition(p)).toBe(d);
  await drive(bus, joiner.close());
  await bus.clock.advance(HB * 5);
  expect(a.node.ring.ownerOfPartition(p)).toBe("a");
  for (let i = 1; i <= 5; i++) expect((await drive(bus, a.ref(Tokened, key).add()))[0]).toBe(i);
  await bus.clock.advance(HB * 3);
  return { bus, stall, a, b, c, key, p, fences };
}

/**
 * a stalls for `ms` from just after an echo of its heartbeat; c dies 200 ms into the stall (its
 * last heartbeats are queued at a, so a's own fence does not outlast them); `during` runs at the
 * end of the stall, before a resumes. Then the key is asked again.
 */
async function stallAndKill(
  s: Setup,
  ms: number,
  during?: () => void,
): Promise<{ answeredMs: number | undefined; value: number | undefined }> {
  const { bus, stall, a, c, key } = s;
  let echoed = false;
  const spy = bus.connect("spy").subscribe("keyhold.sf.hb", () => {
    echoed = true;
  });
  for (let i = 0; i < HB * 2 && !echoed; i++) await bus.clock.advance(1);
  spy.unsubscribe();
  await bus.clock.advance(2);
  stall.pause();
  await bus.clock.advance(200);
  (c.node.transport as unknown as { disconnect(): void }).disconnect();
  await bus.clock.advance(ms - 200);
  during?.();
  stall.resume();
  await bus.clock.advance(HB * 3);
  expect(s.fences[0]).toBe("fenced");
  const t0 = bus.clock.now();
  let answeredMs: number | undefined;
  const ask = a
    .ref(Tokened, key)
    .add()
    .then(([n]) => {
      answeredMs = bus.clock.now() - t0;
      return n;
    });
  ask.catch(() => {});
  for (let t = 0; t < 5000 && answeredMs === undefined; t++) await bus.clock.advance(1);
  return { answeredMs, value: answeredMs === undefined ? undefined : await ask };
}

it("a stall within H: the pre-fence records are served at once, without waiting for the dead peer", async () => {
  const s = await setup();
  const { answeredMs, value } = await stallAndKill(s, 250);
  expect(value).toBe(6); // nothing acknowledged was lost, nothing restarted
  expect(answeredMs).toBeLessThan(2000);
  expect(s.fences).toEqual(["fenced", "unfenced true"]);
  const h = s.a.stats().handoff;
  expect(h.preFenceLeaseKept).toBeGreaterThan(0);
  expect(h.copyWaits).toBe(0);
  expect(h.preFenceDropped).toBe(0);
  await drive(
    s.bus,
    Promise.all([s.a.close(), s.b.close()]).catch(() => {}),
  );
});

it("a stall past H (no take-over either): still waits for the dead peer", async () => {
  const s = await setup();
  const { answeredMs } = await stallAndKill(s, 295);
  expect(answeredMs).toBeUndefined(); // not within 5 s: it waits 6 × handoffTimeoutMs for c
  expect(s.fences).toEqual(["fenced", "unfenced false"]);
  const h = s.a.stats().handoff;
  expect(h.preFenceLeaseKept).toBe(0);
  expect(h.copyWaits).toBeGreaterThan(0);
  await drive(
    s.bus,
    Promise.all([s.a.close(), s.b.close()]).catch(() => {}),
  );
});

it("a pull of the partition during a short fence: still waits for the dead peer", async () => {
  const s = await setup();
  // Someone asks a for the partition while a is stalled (it sits in a's socket): whoever sent
  // it took the partition, so a's records may not be its newest.
  const pull = () =>
    void s.bus
      .connect("x")
      .request(nodeSubject("sf", "a"), encode({ v: 1, k: "pull", p: s.p, from: "x", ep: 1 }), {
        timeout: 500,
      })
      .catch(() => {});
  const { answeredMs } = await stallAndKill(s, 250, pull);
  expect(answeredMs).toBeUndefined();
  expect(s.fences).toEqual(["fenced", "unfenced true"]);
  const h = s.a.stats().handoff;
  expect(h.copyWaits).toBeGreaterThan(0);
  await drive(
    s.bus,
    Promise.all([s.a.close(), s.b.close()]).catch(() => {}),
  );
});
