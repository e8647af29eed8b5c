// Tests of the Wallet entity with TestCluster: three nodes in this process on the simulated
// bus with a virtual clock (milliseconds per test, same result every run), then once on a
// real nats-server.
import { HandlerError } from "@keyhold/actors";
import { TestCluster } from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Wallet } from "../src/wallet.js";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe("Wallet on a simulated cluster", () => {
  it("deposits and pays, once per payment id", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Wallet] });
    const alice = cluster.ref(Wallet, "alice");
    expect(await alice.deposit(100)).toBe(100);
    expect(await alice.pay("p1", 30)).toBe(70);
    expect(await alice.pay("p1", 30)).toBe(70); // a retried payment is not applied twice
    expect(await cluster.ref(Wallet, "bob").balance()).toBe(0);
  });

  it("a refused payment reaches the caller as a HandlerError with the entity's error name", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Wallet] });
    const err = await cluster
      .ref(Wallet, "carol")
      .pay("p1", 5)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandlerError);
    expect((err as HandlerError).remoteName).toBe("InsufficientFundsError");
    expect((err as HandlerError).message).toBe("balance 0 is less than 5");
  });

  it("keeps every acknowledged deposit when the owner crashes", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Wallet] });
    const dave = cluster.ref(Wallet, "dave");
    for (let i = 0; i < 10; i++) await dave.deposit(10);
    const owner = cluster.ownerOf("dave") as string;
    await cluster.crash(owner);
    // The others notice once the crashed node's lease runs out: virtual time, no waiting.
    await cluster.advance(cluster.ttlMs);
    await cluster.converge();
    expect(cluster.ownerOf("dave")).not.toBe(owner);
    expect(await dave.balance()).toBe(100);
  });

  it("moves wallets when a node joins and when one leaves", async () => {
    cluster = await TestCluster.start({ nodes: 2, entities: [Wallet] });
    const names = Array.from({ length: 30 }, (_, i) => `user-${i}`);
    for (const n of names) await cluster.ref(Wallet, n).deposit(7);
    await cluster.join();
    await cluster.leave("node-1");
    for (const n of names) expect(await cluster.ref(Wallet, n).balance()).toBe(7);
  });

  it("a paused owner stops answering; its wallets are served by the others meanwhile", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Wallet] });
    await cluster.ref(Wallet, "erin").deposit(50);
    const owner = cluster.ownerOf("erin") as string;
    cluster.pause(owner); // like SIGSTOP: a long GC pause or a stopped VM
    await cluster.converge();
    expect(cluster.ownerOf("erin")).not.toBe(owner);
    expect(await cluster.ref(Wallet, "erin").deposit(1)).toBe(51); // replicated: nothing lost
    cluster.resume(owner);
    await cluster.converge();
    expect(await cluster.ref(Wallet, "erin").balance()).toBe(51);
  });

  it("the majority side of a partition keeps serving", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Wallet] });
    await cluster.ref(Wallet, "frank").deposit(20);
    cluster.partition(["node-1", "node-2"], ["node-3"]); // the client stays with the first group
    await cluster.converge();
    expect(cluster.client.node.members()).toEqual(["node-1", "node-2"]);
    expect(await cluster.ref(Wallet, "frank").pay("p1", 5)).toBe(15);
    cluster.heal();
    await cluster.converge();
  });
});

describe("Wallet on nats-server", () => {
  it("the same calls work over a real server", async () => {
    cluster = await TestCluster.start({ nodes: 3, entities: [Wallet], nats: true });
    const grace = cluster.ref(Wallet, "grace");
    expect(await grace.deposit(40)).toBe(40);
    expect(await grace.pay("p1", 15)).toBe(25);
    await cluster.crash(cluster.ownerOf("grace") as string);
    await cluster.converge();
    expect(await grace.balance()).toBe(25);
  });
});
