// Read-only handlers on the simulated bus: they see every write answered before them, run
// concurrently with each other but never with a writer, are refused any write to `this.state`,
// and on a `replicas: 3` entity send no replica copies.
import { Entity, InvalidEntityError, ReadOnlyStateError, type Sharding } from "@keyhold/actors";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import { drive, startOn } from "./support.js";

class Account extends Entity<{ n: number; items: number[]; tags: Record<string, number>; at: Date }> {
  static readonly type = "account";
  static readonly replicas = 3;
  static readonly readOnly = [
    "balance",
    "slowBalance",
    "sneaky",
    "replace",
    "pushItem",
    "tag",
    "touch",
  ] as const;
  static reading = 0;
  static maxReading = 0;
  static writerSawReaders = false;
  static gate: Promise<void> = Promise.resolve();
  initialState() {
    return { n: 0, items: [], tags: {}, at: new Date(0) };
  }
  deposit(by: number) {
    if (Account.reading > 0) Account.writerSawReaders = true;
    this.state.n += by;
    this.state.items.push(by);
    return this.state.n;
  }
  balance() {
    return this.state.n;
  }
  async slowBalance() {
    Account.reading++;
    Account.maxReading = Math.max(Account.maxReading, Account.reading);
    await Account.gate;
    Account.reading--;
    return this.state.n;
  }
  sneaky() {
    this.state.n = 1_000;
    return "wrote";
  }
  replace() {
    this.state = { n: 7, items: [], tags: {}, at: new Date(0) };
    return "replaced";
  }
  pushItem() {
    this.state.items.push(99);
    return "pushed";
  }
  tag() {
    this.state.tags.x = 1;
    return "tagged";
  }
  touch() {
    this.state.at.setTime(5);
    return "touched";
  }
  items() {
    return [...this.state.items];
  }
  reset() {
    this.state = { n: 0, items: [7], tags: {}, at: new Date(0) };
    return 0;
  }
}

async function cluster(): Promise<{ bus: SimBus; nodes: Sharding[]; client: Sharding }> {
  const bus = new SimBus(new VirtualClock());
  const nodes: Sharding[] = [];
  for (const id of ["a", "b", "c"]) nodes.push(await startOn(bus, id, { entities: [Account] }));
  const client = await startOn(bus, "client", { entities: [Account] }, true);
  return { bus, nodes, client };
}

const sum = (nodes: Sharding[], f: (s: ReturnType<Sharding["stats"]>) => number) =>
  nodes.reduce((acc, n) => acc + f(n.stats()), 0);

describe("read-only handlers", () => {
  it("see every write answered before them, from any node or a client", async () => {
    const { bus, nodes, client } = await cluster();
    let expected = 0;
    for (let i = 1; i <= 10; i++) {
      const via = i % 2 === 0 ? client : nodes[i % 3]!;
      expected += i;
      expect(await drive(bus, via.ref(Account, "acc").deposit(i))).toBe(expected);
      expect(await drive(bus, via.ref(Account, "acc").balance())).toBe(expected);
    }
    // A read sent right after a write, in the same turn, queues behind it and sees it.
    const w = client.ref(Account, "acc").deposit(100);
    const r = client.ref(Account, "acc").balance();
    expect(await drive(bus, Promise.all([w, r]))).toEqual([expected + 100, expected + 100]);
  });

  it("skip the version bump and replication on a replicas: 3 entity", async () => {
    const { bus, nodes, client } = await cluster();
    await drive(bus, client.ref(Account, "rep").deposit(5));
    const copies = sum(nodes, (s) => s.replication.copiesIn);
    const writes = sum(nodes, (s) => s.replication.writes);
    expect(copies).toBeGreaterThanOrEqual(2); // the write did reach the two replicas
    for (let i = 0; i < 20; i++) expect(await drive(bus, client.ref(Account, "rep").balance())).toBe(5);
    expect(sum(nodes, (s) => s.replication.copiesIn)).toBe(copies);
    expect(sum(nodes, (s) => s.replication.writes)).toBe(writes);
    // The next write still replicates (the version moved by one write only, never by reads).
    await drive(bus, client.ref(Account, "rep").deposit(1));
    expect(sum(nodes, (s) => s.replication.copiesIn)).toBeGreaterThan(copies);
  });

  it("run concurrently with each other, never beside a writer", async () => {
    const { bus, client } = await cluster();
    await drive(bus, client.ref(Account, "conc").deposit(1));
    let open!: () => void;
    Account.gate = new Promise<void>((r) => {
      open = r;
    });
    Account.reading = 0;
    Account.maxReading = 0;
    Account.writerSawReaders = false;
    const reads = Array.from({ length: 5 }, () => client.ref(Account, "conc").slowBalance());
    const write = client.ref(Account, "conc").deposit(10);
    const after = client.ref(Account, "conc").slowBalance();
    await bus.clock.advance(20);
    expect(Account.maxReading).toBe(5); // all five readers inside the handler at once
    open();
    expect(await drive(bus, Promise.all(reads))).toEqual([1, 1, 1, 1, 1]);
    expect(await drive(bus, write)).toBe(11);
    expect(await drive(bus, after)).toBe(11);
    expect(Account.writerSawReaders).toBe(false);
  });

  it("guard the state object a writer put in place of the one they saw before", async () => {
    const { bus, client } = await cluster();
    const acc = client.ref(Account, "swap");
    await drive(bus, acc.deposit(4));
    expect(await drive(bus, acc.balance())).toBe(4); // read through the view of the first object
    await drive(bus, acc.reset());
    expect(await drive(bus, acc.balance())).toBe(0);
    const err = await drive(bus, acc.ask("pushItem", [])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReadOnlyStateError);
    expect(await drive(bus, acc.items())).toEqual([7]);
  });

  it("refuse any write to this.state, leaving it unchanged", async () => {
    const { bus, client } = await cluster();
    await drive(bus, client.ref(Account, "ro").deposit(3));
    for (const h of ["sneaky", "replace", "pushItem", "tag", "touch"] as const) {
      const err = await drive(bus, client.ref(Account, "ro").ask(h, [])).catch((e: unknown) => e);
      expect(err, h).toBeInstanceOf(ReadOnlyStateError);
      expect(String(err), h).toContain("read-only");
    }
    expect(await drive(bus, client.ref(Account, "ro").balance())).toBe(3);
    expect(await drive(bus, client.ref(Account, "ro").items())).toEqual([3]);
    // Writers still write after readers were refused (the real state is back in place).
    expect(await drive(bus, client.ref(Account, "ro").deposit(1))).toBe(4);
  });

  it("an entity class naming a handler it does not have in readOnly is refused", async () => {
    class Bad extends Entity<number> {
      static readonly type = "bad";
      static readonly readOnly = ["nope"];
      initialState() {
        return 0;
      }
      get() {
        return this.state;
      }
    }
    const bus = new SimBus(new VirtualClock());
    const err = await startOn(bus, "a", { entities: [Bad] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidEntityError);
    expect(String(err)).toContain("readOnly");
  });
});
