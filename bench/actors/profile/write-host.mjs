// The node side of write.mjs: hosts the replicated counters (replicas 1, 2, 3) with or without a
// NATS KV store (argv: servers, cluster, bucket or "-"), reports its CPU time over IPC.
import { natsKvStore, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { writeEntities } from "./write-entities.mjs";

const [servers, cluster, bucket] = process.argv.slice(2);
const s = await Sharding.start({
  servers,
  cluster,
  entities: writeEntities,
  logger: silentLogger,
  idleMs: 0,
  ...(bucket && bucket !== "-" ? { store: natsKvStore({ bucket }) } : {}),
});
process.send({ type: "ready", id: s.node.id });
process.on("message", async (m) => {
  if (m === "cpu") {
    const r = s.stats().replication;
    process.send({
      type: "cpu",
      v: process.cpuUsage(),
      w: globalThis.__socketWrites ?? 0,
      copies: [r.copiesSent, r.copyRequests],
    });
  }
  if (m === "close") {
    await s.close();
    process.exit(0);
  }
});
