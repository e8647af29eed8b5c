// Fencing tokens on the simulated bus: replicas refuse a lower epoch with `stale`, a primary
// that hears `stale` gives the partition up and serves it again only under a new epoch, only
// replicas that validated the token count toward the quorum, and `fencingToken` grows with
// every change of owner (shared MemoryEpochs standing in for the KV bucket, and local stamps).
import {
  Entity,
  EpochError,
  MemoryEpochs,
  nodeSubject,
  type Sharding,
  type ShardingOptions,
} from "@keyhold/actors";
import { ConfigMismatchError } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { Packr } from "msgpackr";
import { beforeEach, describe, expect, it } from "vitest";
import { decodeReply, decodeRequest, isError } from "../src/wire.js";
import { Tokened } from "./fixtures/tokened.js";
import { drive, HB, startOn, TTL } from "./support.js";

class Plain extends Entity<{ n: number }> {
  static readonly type = "plain";
  initialState() {
    return { n: 0 };
  }
  token(): number {
    return this.fencingToken;
  }
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
type Rep = {
  k: string;
  p: number;
  ep?: number;
  recs: { t: string; key: string; ver: number; acq?: number }[];
};

let bus: SimBus;
let shared: MemoryEpochs;
/** Every ask answered as owner: by whom, which key, when (virtual clock). */
let acks: { node: string; key: string; at: number }[];
beforeEach(() => {
  bus = new SimBus(new VirtualClock());
  shared = new MemoryEpochs();
  acks = [];
});

function node(id: string, extra: Partial<ShardingOptions> = {}): Promise<Sharding> {
  return startOn(bus, id, {
    cluster: "e",
    entities: [Tokened, Plain],
    epochs: shared.source(id),
    onAck: (a) => acks.push({ node: id, key: a.key, at: bus.clock.now() }),
    ...extra,
  });
}

/** When `s` last finished taking partition `p` (an acquisition or a re-acquisition). */
function servedSince(s: Sharding, p: number): number {
  return (
    s
      .handoffs()
      .filter((h) => h.partition === p)
      .at(-1)?.at ?? Number.NaN
  );
}

async function request(to: string, msg: object): Promise<Record<string, unknown>> {
  const raw = bus.connect(`raw-${Math.random()}`);
  const data = await drive(bus, raw.request(nodeSubject("e", to), packr.pack(msg), { timeout: 1000 }));
  return packr.unpack(data) as Record<string, unknown>;
}

/** Fences `targets` for partition `p` the way a new owner's pull does, with a real new epoch. */
async function fence(p: number, targets: readonly string[]): Promise<number> {
  const ep = await shared.source("usurper").take(p, 0);
  for (const t of targets) await request(t, { v: 1, k: "pull", p, from: "usurper", ep });
  return ep;
}

describe("fencing tokens", () => {
  it("a replica refuses a copy of a lower epoch with stale, naming its own", async () => {
    const nodes = [await node("a"), await node("b"), await node("c")];
    const [a] = nodes;
    const [, replica] = a!.node.owners("k", 3);
    const raw = bus.connect("spy");
    let last: Rep | undefined;
    raw.subscribe(nodeSubject("e", replica!), (m) => {
      // Copy version 2: the records travel packed inside; decodeRequest's `recs` unpacks them.
      const d = decodeRequest(m.data);
      const msg = (isError(d) ? {} : d) as Rep;
      if (msg.k === "rep" && msg.recs[0]?.key === "k") last = { ...msg, recs: [...msg.recs] };
    });
    for (let i = 1; i <= 3; i++) expect((await drive(bus, a!.ref(Tokened, "k").add()))[0]).toBe(i);
    const ep = last!.ep!;
    expect(ep).toBeGreaterThan(0);
    expect(last!.recs[0]!.acq).toBe(ep);
    const copy = (e: number | undefined, ver: number) => ({
      v: 1,
      k: "rep",
      p: last!.p,
      from: a!.node.owners("k", 1)[0],
      recs: [{ t: "tokened", key: "k", s: { n: 99 }, ver, act: true, acq: e ?? 0 }],
      ...(e === undefined ? {} : { ep: e }),
    });
    // A higher version does not help a lower epoch, nor a copy with no epoch at all.
    expect(await request(replica!, copy(ep - 1, 100))).toMatchObject({ k: "stale", n: 1, ep });
    expect(await request(replica!, copy(undefined, 100))).toMatchObject({ k: "stale", n: 1, ep });
    // The primary's own copy again is a duplicate: acknowledged.
    expect((await request(replica!, copy(ep, 3))).k).toBe("repok");
    const judge = nodes.find((n) => n.node.id === replica)!;
    expect(judge.stats().replication.epochRefused).toBe(2);
    // Nothing refused was kept.
    expect((await drive(bus, a!.ref(Tokened, "k").add()))[0]).toBe(4);
  });

  it("a primary that hears stale gives the partition up and serves it again only under a newer epoch", async () => {
    const nodes = [await node("a"), await node("b"), await node("c")];
    const client = await startOn(bus, "cl", { cluster: "e", entities: [Tokened] }, true);
    const [primaryId, ...replicas] = client.node.owners("k", 3);
    const primary = nodes.find((n) => n.node.id === primaryId)!;
    const [, t1] = await drive(bus, client.ref(Tokened, "k").add());
    const p = client.node.ring.partition("k");
    const usurper = await fence(p, replicas);
    expect(usurper).toBeGreaterThan(t1);
    const fencedAt = bus.clock.now();
    // Five asks after the fence: the first one's copies are refused, the partition is given up,
    // and nothing is acknowledged until it has been taken again under a newer epoch.
    const results = await drive(
      bus,
      Promise.all(Array.from({ length: 5 }, () => client.ref(Tokened, "k").add())),
    );
    expect(primary.stats().handoff.partitionsYielded).toBe(1);
    expect(primary.stats().replication.writesRefused).toBe(1);
    const retaken = servedSince(primary, p);
    expect(retaken).toBeGreaterThanOrEqual(fencedAt + 2 * HB);
    const after = acks.filter((a) => a.key === "k" && a.at >= fencedAt);
    expect(after.length).toBe(5);
    for (const a of after) expect(a.at).toBeGreaterThanOrEqual(retaken);
    // Only the handler run that met the refusal saw the old token (its retry is answered from
    // the remembered ask); every other ran under the new tenure.
    expect(results.filter(([, t]) => t <= usurper).length).toBeLessThanOrEqual(1);
    expect(results.filter(([, t]) => t > usurper).length).toBeGreaterThanOrEqual(4);
    // Nothing lost or doubled.
    expect(results.map(([n]) => n).sort((x, y) => x - y)).toEqual([2, 3, 4, 5, 6]);
  });

  it("only replicas that validated the token count toward the quorum", async () => {
    const nodes = [await node("a"), await node("b"), await node("c")];
    const [a] = nodes;
    const [primaryId, r1] = a!.node.owners("q", 3);
    const primary = nodes.find((n) => n.node.id === primaryId)!;
    const [, t1] = await drive(bus, primary.ref(Tokened, "q").add());
    // One replica learns a newer epoch, the other does not: under "all" the one acknowledgement
    // of the unfenced replica must not carry the write.
    const p = a!.node.ring.partition("q");
    const usurper = await fence(p, [r1!]);
    const fencedAt = bus.clock.now();
    const client = await startOn(bus, "cl", { cluster: "e", entities: [Tokened] }, true);
    const [n] = await drive(bus, client.ref(Tokened, "q").add());
    expect(t1).toBeLessThan(usurper);
    expect(n).toBe(2);
    expect(primary.stats().replication.writesRefused).toBe(1);
    // The outcome was (stale, ok): not acknowledged then, only once the partition was retaken.
    const ack = acks.filter((x) => x.key === "q" && x.at >= fencedAt);
    expect(ack.length).toBe(1);
    expect(ack[0]!.at).toBeGreaterThanOrEqual(servedSince(primary, p));
    expect(servedSince(primary, p)).toBeGreaterThan(fencedAt);
    expect(await drive(bus, client.ref(Tokened, "q").add())).toEqual([3, expect.any(Number)]);
  });

  it("fencingToken increases with every change of owner (joins, leaves, crashes)", async () => {
    for (const mode of ["memory", "local"] as const) {
      bus = new SimBus(new VirtualClock());
      shared = new MemoryEpochs();
      const opts = mode === "local" ? { epochs: "local" as const } : {};
      const a = await node("a", opts);
      const client = await startOn(bus, "cl", { cluster: "e", entities: [Plain] }, true);
      const keys = Array.from({ length: 40 }, (_, i) => `t${i}`);
      const tokens = new Map<string, number[]>();
      const observe = async () => {
        for (const k of keys) {
          const t = await drive(bus, client.ref(Plain, k).token());
          const seen = tokens.get(k) ?? [];
          if (seen.length === 0 || seen.at(-1) !== t) seen.push(t);
          tokens.set(k, seen);
        }
      };
      await observe();
      const b = await node("b", opts);
      await bus.clock.advance(HB * 5);
      await observe();
      const c = await node("c", opts);
      await bus.clock.advance(HB * 5);
      await observe();
      await drive(bus, b.close());
      await bus.clock.advance(HB * 5);
      await observe();
      await c.node.transport.close(); // a crash
      await bus.clock.advance(TTL + HB * 5);
      await observe();
      let changes = 0;
      for (const [k, seen] of tokens) {
        for (let i = 1; i < seen.length; i++) expect(seen[i]!, `${mode} ${k}`).toBeGreaterThan(seen[i - 1]!);
        changes += seen.length - 1;
      }
      expect(changes, mode).toBeGreaterThan(20);
      await drive(bus, Promise.all([a.close(), client.close()]));
    }
  });

  it("a node that cannot take an epoch does not serve the partition until it can", async () => {
    shared.unreachable.add("a");
    const a = await node("a");
    const ask = a.ref(Plain, "x").token();
    await bus.clock.advance(2000);
    let settled = false;
    void ask.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await bus.clock.advance(1);
    expect(settled).toBe(false);
    expect(a.stats().epochs.failures).toBeGreaterThan(0);
    shared.unreachable.delete("a");
    expect(await drive(bus, ask)).toBeGreaterThan(0);
  });

  it('epochs: "jetstream" without NATS fails at start with EpochError', async () => {
    const err = await startOn(bus, "j", { cluster: "e", entities: [Plain], epochs: "jetstream" }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EpochError);
    expect(String(err)).toMatch(/jetstream/);
  });

  it("epochs on the wire are validated: a bad ep makes the message malformed, absent reads as 0", () => {
    const pull = (ep: unknown) => packr.pack({ v: 1, k: "pull", p: 3, from: "n1", ep });
    const rep = (ep: unknown) => packr.pack({ v: 1, k: "rep", p: 3, from: "n1", recs: [], ep });
    for (const bad of [-1, 1.5, "7", Number.MAX_SAFE_INTEGER + 2, null, {}]) {
      expect(decodeRequest(pull(bad)), String(bad)).toEqual({ error: "bad epoch" });
      expect(decodeRequest(rep(bad)), String(bad)).toEqual({ error: "bad epoch" });
      expect(
        decodeReply(packr.pack({ v: 1, k: "stale", n: 1, primary: null, ep: bad })),
        String(bad),
      ).toEqual({ error: "bad epoch" });
    }
    expect(decodeRequest(pull(42))).toMatchObject({ k: "pull", ep: 42 });
    expect(decodeRequest(packr.pack({ v: 1, k: "pull", p: 3, from: "n1" }))).not.toHaveProperty("ep");
    expect(decodeRequest(rep(9))).toMatchObject({ k: "rep", ep: 9 });
  });
});

describe("the epoch mode in the join-time config check", () => {
  it("a node whose fencing tokens come from another source is refused, naming both", async () => {
    await node("a", { epochs: "local" });
    const err = await startOn(bus, "b", {
      cluster: "e",
      entities: [Tokened, Plain],
      epochs: shared.source("b"),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigMismatchError);
    const d = (err as ConfigMismatchError).differences;
    expect(d).toEqual([{ setting: "fencing tokens (epochs)", ours: "memory", theirs: "local" }]);
    expect((err as Error).message).toContain('fencing tokens (epochs) is "memory" here but "local"');
  });

  it("nodes of one mode join, and a client (which takes no tokens) joins any", async () => {
    const [a, b] = [await node("a", { epochs: "local" }), await node("b", { epochs: "local" })];
    const client = await startOn(bus, "cl", { cluster: "e", entities: [Tokened, Plain] }, true);
    await bus.clock.advance(HB * 3);
    expect(a.node.members()).toEqual(["a", "b"]);
    expect(b.node.config.fencingTokens).toBe("local");
    expect(client.node.members()).toEqual(["a", "b"]);
  });
});

describe("an epoch taken for a partition lost meanwhile", () => {
  it("is spent: the node neither pulls with it nor serves the partition", async () => {
    let gate: Promise<void> | undefined;
    let open!: () => void;
    const inner = shared.source("a");
    const held = {
      kind: "memory" as const,
      stats: inner.stats,
      take: async (p: number, seen: number) => {
        if (gate) await gate;
        return inner.take(p, seen);
      },
    };
    const a = await node("a", { epochs: held });
    const b = await node("b");
    await bus.clock.advance(HB * 3);
    const bs = range(a).filter((p) => a.node.ring.ownerOfPartition(p) === "b");
    expect(bs.length).toBeGreaterThan(0);
    // b leaves: a acquires b's partitions, but its takes wait at the gate.
    gate = new Promise<void>((r) => {
      open = r;
    });
    const since = bus.clock.now();
    await drive(bus, b.close());
    await bus.clock.advance(HB * 2);
    expect(bs.every((p) => a.node.ring.ownerOfPartition(p) === "a")).toBe(true);
    // b comes back and wins them again before a's takes return.
    const b2 = await node("b");
    await bus.clock.advance(HB * 3);
    expect(bs.every((p) => a.node.ring.ownerOfPartition(p) === "b")).toBe(true);
    open();
    await bus.clock.advance(HB * 10);
    const servedByA = a.handoffs().filter((h) => h.at >= since && bs.includes(h.partition));
    expect(servedByA).toEqual([]);
    // b serves them again, above the epochs a spent.
    for (const p of bs) expect(b2.handoffs().some((h) => h.partition === p && h.at >= since)).toBe(true);
  });
});

function range(s: Sharding): number[] {
  return Array.from({ length: s.node.ring.ringSize }, (_, i) => i);
}

class Count extends Entity<{ n: number }> {
  static readonly type = "count";
  initialState() {
    return { n: 0 };
  }
  add(): number {
    return ++this.state.n;
  }
}

describe("re-acquiring after a fence, with a member that cannot answer", () => {
  for (const usurped of [false, true])
    it(
      usurped
        ? "drops them when another node took an epoch for it meanwhile"
        : "keeps the node's own records when the epochs show nobody took the partition since",
      async () => {
        const a = await node("a", { entities: [Count] });
        const b = await node("b", { entities: [Count] });
        await bus.clock.advance(HB * 3);
        const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => a.node.place(k) === "a")!;
        for (let i = 1; i <= 5; i++) expect(await drive(bus, a.ref(Count, key).add())).toBe(i);
        // b dies, and a loses NATS for longer than its lease but shorter than ttlMs: a fences and
        // releases its partitions as pre-fence; nobody can have taken them (b is gone).
        await b.node.transport.close();
        const link = a.node.transport as unknown as { disconnect(): void; reconnect(): void };
        link.disconnect();
        await bus.clock.advance(TTL - HB / 2);
        expect(a.node.fenced).toBe(true);
        // Another node took the partition meanwhile (and may have served it): a cannot tell what.
        if (usurped) await shared.source("usurper").take(a.node.ring.partition(key), 0);
        link.reconnect();
        // a rejoins and re-acquires; its pull to b gets no responders (incomplete).
        await bus.clock.advance(TTL * 3);
        expect(a.node.fenced).toBe(false);
        expect(await drive(bus, a.ref(Count, key).add())).toBe(usurped ? 1 : 6);
        expect(a.stats().handoff.preFenceDropped > 0).toBe(usurped);
      },
    );
});
