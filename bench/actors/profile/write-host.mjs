// The node side of write.mjs: hosts the replicated counters (replicas 1, 2, 3) with or without a
// NATS KV store (argv: servers, cluster, bucket or "-"), reports its CPU time over IPC.

import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
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
// With WINDOW_PROF=<dir>: a CPU profile of the measured window only (between the first and the
// second "cpu" message of write.mjs), without start-up, activation and warm-up.
// Profiling switches from the environment (not turbo tasks: these scripts run on their own).
const { WINDOW_PROF: dir, WINDOW_HEAP } = process.env;
let session;
let cpuCalls = 0;
const windowProfile = () => {
  cpuCalls++;
  if (!dir) return;
  // WINDOW_HEAP=1: an allocation profile instead (every allocation sampled, collected or not).
  const heap = WINDOW_HEAP === "1";
  if (cpuCalls === 1) {
    session = new Session();
    session.connect();
    if (heap)
      session.post("HeapProfiler.startSampling", {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    else session.post("Profiler.enable", () => session.post("Profiler.start"));
  } else if (cpuCalls === 2 && heap)
    session.post("HeapProfiler.stopSampling", (err, r) => {
      if (!err) writeFileSync(`${dir}/window-${process.pid}.heapprofile`, JSON.stringify(r.profile));
    });
  else if (cpuCalls === 2)
    session.post("Profiler.stop", (err, r) => {
      if (!err) writeFileSync(`${dir}/window-${process.pid}.cpuprofile`, JSON.stringify(r.profile));
    });
};
process.on("message", async (m) => {
  if (m === "cpu") {
    windowProfile();
    const r = s.stats().replication;
    process.send({
      type: "cpu",
      v: process.cpuUsage(),
      w: globalThis.__socketWrites ?? 0,
      copies: [r.copiesSent, r.copyRequests],
    });
  }
  // The hand-off counters, so write.mjs can wait for the join's moves to end before it measures.
  if (m === "handoffs") process.send({ type: "handoffs", v: JSON.stringify(s.stats().handoff) });
  if (m === "close") {
    await s.close();
    process.exit(0);
  }
});
