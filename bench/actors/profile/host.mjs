// The owner side of remote.mjs: hosts Counter entities, reports its CPU time over IPC.
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { Counter } from "../built-support.mjs";

const [servers, cluster] = process.argv.slice(2);
const s = await Sharding.start({ servers, cluster, entities: [Counter], logger: silentLogger, idleMs: 0 });
process.send({ type: "ready", id: s.node.id });
process.on("message", async (m) => {
  if (m === "cpu") process.send({ type: "cpu", v: process.cpuUsage() });
  if (m === "close") {
    await s.close();
    process.exit(0);
  }
});
