// Fault testing with @keyhold/testing: register entities on three node processes, each talking
// to its own server of a three-server NATS cluster whose every link runs through a fault proxy.
// Clients read, write and compare-and-set while one node is paused (SIGSTOP) past its lease and
// another node's client link is blackholed; then the history is checked for linearizability
// and the nodes' acknowledgement logs for two owners at once and for lost writes.
// Run: npm start -w @keyhold/example-fault-testing   (needs nats-server on PATH)
import { fileURLToPath } from "node:url";
import {
  analyzeAcks,
  checkLinearizable,
  HistoryRecorder,
  ProxiedNatsCluster,
  registerLostWrites,
  registerModel,
  ShardingProcess,
  waitFor,
} from "@keyhold/testing";

const ENTITIES = fileURLToPath(new URL("./entities.ts", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

await using cluster = await ProxiedNatsCluster.start();
const nodes = await Promise.all(
  cluster.urls.map((url) =>
    ShardingProcess.spawn(
      { servers: url, cluster: `faults-${process.pid}`, heartbeatMs: 200, ttlMs: 1000, skewMs: 500 },
      ENTITIES,
    ),
  ),
);
try {
  for (const n of nodes)
    await waitFor(async () => (await n.state()).members.length === 3, { timeout: 20_000 });
  console.log(`3 nodes on 3 servers, every link proxied`);

  const history = new HistoryRecorder();
  const keys = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"];
  let stop = false;
  let seq = 0;
  // Client i sends through node i. An error says nothing about whether the write happened, so
  // it is recorded as unknown (info); a cas that answers false certainly did not swap (fail).
  const client = async (i: number) => {
    const node = nodes[i] as ShardingProcess;
    while (!stop) {
      const key = keys[Math.floor(Math.random() * keys.length)] as string;
      const dice = Math.random();
      const op = `op-${seq++}`;
      if (dice < 0.5) {
        const h = history.invoke(`c${i}`, key, "read");
        const r = await node.ask("register", key, "read", [], 1_000);
        if (r.ok) h.ok(r.result);
        else h.info(r.code);
      } else if (dice < 0.8) {
        const value = Math.floor(Math.random() * 5);
        const h = history.invoke(`c${i}`, key, "write", value);
        const r = await node.ask("register", key, "write", [value, op], 1_000);
        if (r.ok) h.ok();
        else h.info(r.code);
      } else {
        const expected = Math.floor(Math.random() * 5);
        const value = Math.floor(Math.random() * 5);
        const h = history.invoke(`c${i}`, key, "cas", [expected, value]);
        const r = await node.ask("register", key, "cas", [expected, value, op], 1_000);
        if (!r.ok) h.info(r.code);
        else if (r.result === true) h.ok();
        else h.fail();
      }
    }
  };
  const clients = [0, 1, 2].map(client);

  await sleep(1_500);
  const paused = nodes[2] as ShardingProcess;
  paused.pause();
  console.log("node 2 paused (SIGSTOP) for 3.2 s, four times its lease");
  await sleep(3_200);
  paused.resume();
  await sleep(1_500);
  cluster.clientLink(1).blackhole();
  console.log("node 1's client link blackholed for 3 s");
  await sleep(3_000);
  cluster.heal();
  await sleep(1_500);
  stop = true;
  await Promise.all(clients);

  // A final read of each key, through a node that was never faulted, retried until it answers.
  const writers = new Map<string, string | undefined>();
  for (const key of keys) {
    await waitFor(
      async () => {
        const h = history.invoke("final", key, "read");
        const r = await (nodes[0] as ShardingProcess).ask("register", key, "read", [], 2_000);
        if (!r.ok) {
          h.info(r.code);
          return false;
        }
        h.ok(r.result);
        const w = await (nodes[0] as ShardingProcess).ask("register", key, "writer", [], 2_000);
        if (w.ok) writers.set(key, (w.result as string | null) ?? undefined);
        return w.ok;
      },
      { timeout: 40_000 },
    );
  }

  const ops = history.operations();
  const count = (s: string) => ops.filter((o) => o.status === s).length;
  console.log(
    `operations: ${ops.length} (ok ${count("ok")}, fail ${count("fail")}, unknown ${count("info")})`,
  );
  const check = checkLinearizable(ops, registerModel(), { timeoutMs: 20_000 });
  const bad = check.keys.filter((k) => k.verdict !== "linearizable").map((k) => `${k.key}:${k.verdict}`);
  console.log(
    `linearizability: ${check.verdict} (${check.keys.length} keys, ${check.elapsedMs.toFixed(0)} ms)${bad.length ? ` ${bad.join(" ")}` : ""}`,
  );
  const acks = nodes.flatMap((n) => n.acks);
  const analysis = analyzeAcks(acks);
  console.log(
    `acknowledgements: ${acks.length} from ${new Set(acks.map((a) => a.node)).size} nodes; keys with two owners at once: ${analysis.keysWithOverlap.length}; longest overlap: ${(analysis.longest?.ms ?? 0).toFixed(1)} ms`,
  );
  const lost = registerLostWrites(acks, (k) => writers.get(k));
  console.log(`acknowledged writes provably lost: ${lost.length}`);
  console.log("ok");
} finally {
  await Promise.allSettled(nodes.map((n) => n.kill()));
}
