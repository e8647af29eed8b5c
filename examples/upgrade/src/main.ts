// A rolling upgrade (docs/how-to/upgrade-a-cluster.md): three nodes serve plain counters under a
// steady load from a client; each node in turn is replaced by a new one (start the new node,
// wait for its partitions, close the old one gracefully), until no original node is left. Every
// acknowledged increment must still be there, plain entities included, because each graceful
// leave hands state over. Then a node that speaks another wire protocol tries to join and is
// refused with ConfigMismatchError, which is what a protocol change between versions does.
// Run: npm start -w @keyhold/example-upgrade   (uses NATS_URL, or starts its own nats-server)
import { ACTOR_PROTOCOL, Entity, Sharding } from "@keyhold/actors";
import { ConfigMismatchError, HASH_VERSION, ShardNode, silentLogger } from "@keyhold/core";
import { NatsServer } from "@keyhold/testing";

class Counter extends Entity<{ n: number }> {
  static readonly type = "counter";
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
  get() {
    return this.state.n;
  }
}

const server = process.env.NATS_URL ? undefined : await NatsServer.start();
const servers = process.env.NATS_URL ?? server!.url;
const cluster = `upgrade-example-${process.pid}`;
const lease = { heartbeatMs: 200, ttlMs: 600, skewMs: 500 };
const common = { servers, cluster, ...lease, logger: silentLogger };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
console.log(`versions: hash ${HASH_VERSION}, protocol ${ACTOR_PROTOCOL}`);

const start = (id: string) => Sharding.start({ ...common, nodeId: id, entities: [Counter] });
let nodes = await Promise.all(["v1-a", "v1-b", "v1-c"].map(start));
const client = await Sharding.connect({ ...common, entities: [Counter], askTimeoutMs: 10_000 });
const waitMembers = async (ids: string[]) => {
  const want = [...ids].sort().join(",");
  while ([...client.node.members()].sort().join(",") !== want) await sleep(20);
};
await waitMembers(nodes.map((n) => n.node.id));
console.log(`members: ${client.node.members().join(", ")}`);

// Steady load: 16 loops adding 1 to random keys; only acknowledged adds are counted.
const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
const acked = new Map<string, number>();
const failedOn = new Map<string, number>();
let failed = 0;
let running = true;
const loop = async () => {
  while (running) {
    const k = keys[Math.floor(Math.random() * keys.length)]!;
    try {
      await client.ref(Counter, k).add(1);
      acked.set(k, (acked.get(k) ?? 0) + 1);
    } catch {
      // Not acknowledged: it may or may not have been applied, so it may show up at most once.
      failed++;
      failedOn.set(k, (failedOn.get(k) ?? 0) + 1);
    }
  }
};
const loops = Array.from({ length: 16 }, loop);
await sleep(300);

for (const old of ["v1-a", "v1-b", "v1-c"]) {
  const fresh = await start(old.replace("v1", "v2"));
  nodes.push(fresh);
  await waitMembers(nodes.map((n) => n.node.id));
  const leaving = nodes.find((n) => n.node.id === old)!;
  const t0 = performance.now();
  await leaving.close();
  nodes = nodes.filter((n) => n !== leaving);
  await waitMembers(nodes.map((n) => n.node.id));
  console.log(`replaced ${old} with ${fresh.node.id} (leave took ${Math.round(performance.now() - t0)} ms)`);
}
await sleep(300);
running = false;
await Promise.all(loops);
console.log(`members: ${client.node.members().join(", ")}`);

// Lost: fewer than acknowledged. Doubled: more than acknowledged plus the failed ones (asks are
// deduplicated by id across retries, so no add may be applied twice).
let lost = 0;
let doubled = 0;
let applied = 0;
for (const k of keys) {
  const n = await client.ref(Counter, k).get();
  const want = acked.get(k) ?? 0;
  applied += want;
  if (n < want) lost += want - n;
  if (n > want + (failedOn.get(k) ?? 0)) doubled += n - want - (failedOn.get(k) ?? 0);
}
console.log(`acknowledged adds: ${applied}, failed asks: ${failed}, lost: ${lost}, doubled: ${doubled}`);

// A node of a version with another entity protocol is refused before it joins.
let refused = "";
try {
  const other = await ShardNode.start({ ...common, nodeId: "next-major", protocol: "keyhold-actors/2" });
  await other.close();
} catch (err) {
  if (!(err instanceof ConfigMismatchError)) throw err;
  refused = err.differences.map((d) => `${d.setting}: ours ${d.ours}, theirs ${d.theirs}`).join("; ");
}
console.log(refused ? `refused at join: ${refused}` : "NOT REFUSED: a node with another protocol joined");

await client.close();
for (const n of nodes) await n.close();
await server?.close();
if (lost > 0 || doubled > 0 || !refused || applied === 0) {
  console.error("FAILED");
  process.exit(1);
}
console.log("ok");
