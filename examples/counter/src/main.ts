// Counter entities: three nodes in this process, a client that hosts nothing, asks and tells by
// key, a handler error arriving as a typed error, and a graceful leave that moves counters
// to the remaining nodes without losing a single increment.
// Run: npm start -w @keyhold/example-counter   (uses NATS_URL, or starts its own nats-server)
import { Entity, HandlerError, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer } from "@keyhold/testing";

class Counter extends Entity<{ n: number }> {
  static readonly type = "counter";
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    if (!Number.isFinite(by)) throw new RangeError(`cannot add ${by}`);
    this.state.n += by;
    return this.state.n;
  }
  get() {
    return this.state.n;
  }
}

const server = process.env.NATS_URL ? undefined : await NatsServer.start();
const servers = process.env.NATS_URL ?? server!.url;
const cluster = `counter-example-${process.pid}`;
const common = { servers, cluster, heartbeatMs: 200, ttlMs: 600, skewMs: 500, logger: silentLogger };

const nodes = await Promise.all(
  ["a", "b", "c"].map((id) => Sharding.start({ ...common, nodeId: `node-${id}`, entities: [Counter] })),
);
const client = await Sharding.connect({ ...common, entities: [Counter] });
while (client.node.members().length < 3) await new Promise((r) => setTimeout(r, 20));
console.log(`members: ${client.node.members().join(", ")}`);

const keys = Array.from({ length: 100 }, (_, i) => `user-${i}`);
let sent = 0;
for (const k of keys) {
  await client.ref(Counter, k).add(1); // ask: waits for the result
  client.ref(Counter, k).tell("add", 1); // tell: fire and forget
  sent += 2;
}
console.log(`user-42 = ${await client.ref(Counter, "user-42").get()} (on ${client.node.place("user-42")})`);

try {
  await client.ref(Counter, "user-1").add(Number.NaN);
} catch (err) {
  if (err instanceof HandlerError)
    console.log(`handler error: ${err.code} ${err.remoteName}: ${err.message}`);
  else throw err;
}

const leaving = nodes[1]!;
const before = keys.filter((k) => client.node.place(k) === leaving.node.id).length;
await leaving.close();
console.log(`node-b left gracefully; ${before} counters moved to ${client.node.members().join(", ")}`);

let total = 0;
for (const k of keys) total += await client.ref(Counter, k).get();
console.log(`sum of counters: ${total} (sent ${sent})`);

await client.close();
for (const n of [nodes[0]!, nodes[2]!]) await n.close();
await server?.close();
if (total !== sent) {
  console.error("MISMATCH: increments were lost");
  process.exit(1);
}
console.log("ok");
