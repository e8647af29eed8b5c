// Fencing an entity's own side effects: an Account entity charges an external ledger and passes
// `this.fencingToken` with every call. The token is the epoch of its owner's tenure of the
// key's partition, taken from a JetStream KV bucket on every acquisition, so it is higher under
// every later owner. The ledger keeps the highest token per account and refuses lower ones: a
// call from a replaced owner (here, a call of the first owner's that was held up and arrives
// after the key moved) is refused instead of applied.
// Run: npm start -w @keyhold/example-fencing   (uses NATS_URL with JetStream, or starts its own nats-server -js)
import { Entity, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer } from "@keyhold/testing";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type Charge, charge, serveLedger } from "./ledger.js";

let ledger!: NatsConnection;
/** Every call an Account made, so the example can replay one late. */
const calls: Charge[] = [];

class Account extends Entity<{ charged: number }> {
  static readonly type = "account";
  initialState() {
    return { charged: 0 };
  }
  async charge(amount: number) {
    const call = { account: this.key, token: this.fencingToken, amount };
    calls.push(call);
    const reply = await charge(ledger, call);
    if (!reply.ok) throw new Error(`ledger refused: ${reply.reason}`);
    this.state.charged += amount;
    return { charged: this.state.charged, token: call.token };
  }
}

const server = process.env.NATS_URL ? undefined : await NatsServer.start({ jetstream: true });
const servers = process.env.NATS_URL ?? server!.url;
ledger = await connect({ servers });
const accepted = serveLedger(ledger);
const cluster = `fencing-example-${process.pid}`;
const common = {
  servers,
  cluster,
  heartbeatMs: 200,
  ttlMs: 600,
  skewMs: 500,
  logger: silentLogger,
  // Fail at start rather than fall back to local stamps when the server has no JetStream.
  epochs: "jetstream" as const,
};
const a = await Sharding.start({ ...common, nodeId: "node-a", entities: [Account] });
const b = await Sharding.start({ ...common, nodeId: "node-b", entities: [Account] });
const client = await Sharding.connect({ ...common, entities: [Account] });
while (client.node.members().length < 2) await new Promise((r) => setTimeout(r, 20));
// node-b joins step by step (the default): pick the account once it owns all it wins.
while (b.node.joinFront !== undefined || client.node.ring.capOf("node-b") !== undefined)
  await new Promise((r) => setTimeout(r, 20));

// An account that node-a owns, so that node-a leaving moves it to node-b.
let key = "acct-0";
for (let i = 1; client.node.place(key) !== "node-a"; i++) key = `acct-${i}`;
const first = await client.ref(Account, key).charge(10);
console.log(`${key} on node-a: charged ${first.charged} with token ${first.token}`);
const held = calls.at(-1)!; // pretend this call of node-a's got stuck in a queue

await a.close(); // node-a leaves: node-b takes the partition over under a new epoch
const second = await client.ref(Account, key).charge(5);
console.log(`${key} on ${client.node.place(key)}: charged ${second.charged} with token ${second.token}`);
console.log(`token rose across the change of owner: ${second.token > first.token}`);

const late = await charge(ledger, held); // node-a's held-up call finally arrives
console.log(
  late.ok ? "late call from node-a applied (wrong!)" : `late call from node-a refused: ${late.reason}`,
);
console.log(`ledger entries: ${accepted.map((c) => `${c.amount}@${c.token}`).join(", ")}`);

await client.close();
await b.close();
await ledger.close();
await server?.close();
console.log(late.ok || second.token <= first.token ? "FAILED" : "ok");
