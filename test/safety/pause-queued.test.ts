// Issue 8's paused node with requests waiting in its socket: three node processes on a real
// nats-server host plain (unreplicated) ledgers under load from a client whose attempts
// outlast the pause, so every worker that asks the victim while it is stopped leaves a request
// queued in its socket. Each node in turn is SIGSTOPped until the others own every partition,
// then SIGCONTed: the backlog reaches it before any timer can tell it what it lost. Without the
// lease check it acknowledges those writes on the state it had before the pause (a second
// owner next to the interim one), and they are lost when it takes the interim owner's state
// back. With it: only the documented restart loss, counted exactly, and nothing else.
import { fileURLToPath } from "node:url";
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import {
  type AckRecord,
  ackClock,
  analyzeAcks,
  HistoryRecorder,
  NatsServer,
  ShardingProcess,
  waitFor,
} from "@keyhold/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type Final, judgeLineages } from "./lineages.js";
import { Ledger } from "./pause-fixtures.js";
import { LEASE, sleep } from "./support.js";

const FIXTURES = fileURLToPath(new URL("./pause-fixtures.ts", import.meta.url));
const KEYS = Array.from({ length: 40 }, (_, i) => `l-${i}`);
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

describe("safety: a paused node with requests queued in its socket", () => {
  // It failed in about 1 of 5 full runs before the answer checked the lease anew: a SIGSTOP
  // landing between a message's admission and its answer (pause-mid-handler.test.ts).
  it("SIGSTOP of each node in turn past the take-over, plain entities: only the documented restart loss, no second owner", async () => {
    const server = await NatsServer.start();
    cleanup.push(() => server.close());
    const cluster = "pauseq";
    const nodes: ShardingProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const n = await ShardingProcess.spawn(
        // A short hand-off wait: the interim owners give up pulling from the stopped node and
        // serve its keys from initialState() well before it runs again.
        { servers: server.url, cluster, nodeId: `n${i}`, ...LEASE, handoffTimeoutMs: 500 },
        FIXTURES,
      );
      nodes.push(n);
      cleanup.push(() => n.kill());
    }
    const client = await Sharding.connect({
      servers: server.url,
      cluster,
      ...LEASE,
      entities: [Ledger],
      logger: silentLogger,
      // Longer than a pause: an ask sent to the stopped node waits in its socket until it
      // runs again, instead of being retried elsewhere first.
      attemptTimeoutMs: 6000,
      askTimeoutMs: 20_000,
    });
    cleanup.push(() => client.close());
    await waitFor(() => client.node.members().length === 3, { timeout: 20_000 });
    const ringSize = client.node.ring.ringSize;

    const history = new HistoryRecorder();
    let stop = false;
    let seq = 0;
    const worker = async (w: number) => {
      while (!stop) {
        const key = KEYS[(seq * 7 + w) % KEYS.length]!;
        const op = `op-${w}-${seq++}`;
        await history.run(`c${w}`, `ledger/${key}`, "add", op, () => client.ref(Ledger, key).add(op));
      }
    };
    const workers = Array.from({ length: 24 }, (_, w) => worker(w));
    await sleep(2000);

    const windows: [number, number][] = [];
    for (const victim of nodes) {
      const others = nodes.filter((n) => n !== victim);
      const pausedAt = ackClock();
      victim.pause();
      await waitFor(
        async () => {
          const owned = await Promise.all(others.map((n) => n.state().then((s) => s.owned.length)));
          return owned.reduce((a, b) => a + b, 0) === ringSize;
        },
        { timeout: 20_000, interval: 50 },
      );
      await sleep(1200); // past the hand-off wait: the interim owners serve the victim's keys
      victim.resume();
      windows.push([pausedAt, ackClock()]);
      await waitFor(
        async () => {
          const s = await victim.state();
          return !s.fenced && s.owned.length > 0 && s.members.length === 3;
        },
        { timeout: 20_000, interval: 100 },
      );
      await sleep(1500);
    }
    stop = true;
    await Promise.all(workers);

    const final = new Map<string, Final>();
    for (const k of KEYS) final.set(`ledger/${k}`, (await client.ref(Ledger, k).read()) as Final);
    const records = nodes.flatMap((n) => n.acks);
    const verdict = judgeLineages(records, final);
    const overlaps = analyzeAcks(records);
    const ops = history.operations();
    const acked = ops.filter((o) => o.status === "ok");
    // Asks that were waiting when a victim resumed: sent before, answered after.
    const queued = ops.filter((o) => windows.some(([, r]) => o.invokedAt < r && o.completedAt > r)).length;
    const clientLost = acked.filter((o) => !final.get(o.key)?.ops.includes(o.input as string));
    console.log(
      `[safety] SIGSTOP x3 with queued input (plain): ${ops.length} asks, ${ops.length - acked.length} failed ` +
        `(availability ${((100 * acked.length) / Math.max(1, ops.length)).toFixed(2)}%); ${queued} asks waiting at a resume; ` +
        `${records.length} acks in node logs; lost ${verdict.lost.length} (documented restart loss ` +
        `${verdict.documented.length}, beyond it ${verdict.beyond.length}); acks from a superseded owner ` +
        `${verdict.superseded.length}; keys with two-owner overlap ${overlaps.keysWithOverlap.length}` +
        `${overlaps.longest ? ` (longest ${overlaps.longest.ms.toFixed(1)} ms)` : ""}`,
    );
    if (verdict.superseded.length > 0 || verdict.beyond.length > 0) {
      // What a failure needs to be traced: each bad key's acknowledgements in order, the
      // pause windows, and (KEYHOLD_CHILD_LOG=1) the nodes' logs.
      const bad = new Set([...verdict.superseded, ...verdict.beyond].map((r) => r.key));
      console.log(
        `[safety] pause windows ${JSON.stringify(windows.map(([a, b]) => [a.toFixed(1), b.toFixed(1)]))}`,
      );
      const fmt = (r: AckRecord) =>
        `${r.node}:${String(r.value)}:${r.op}@${r.t0.toFixed(1)}-${r.t1.toFixed(1)}`;
      for (const k of bad) {
        // Where the acknowledging lineage changes, in order of acknowledgement.
        const seq = records.filter((r) => r.key === k).sort((a, b) => a.t1 - b.t1);
        const changes = seq.filter((r, i) => i === 0 || r.value !== seq[i - 1]!.value);
        console.log(`[safety] ${k} lineage changes: ${changes.map(fmt).join(" ")}`);
      }
      if (process.env.KEYHOLD_CHILD_LOG)
        for (const n of nodes) console.log(`[safety] logs of ${n.id}:\n${n.logs().join("\n")}`);
    }
    expect(acked.length).toBeGreaterThan(200);
    expect(queued, "asks waiting in a paused node's socket at its resume").toBeGreaterThan(0);
    // The interim owners did restart keys (the case where a stale answer would be lost).
    expect(verdict.documented.length, "adds lost to the documented restart").toBeGreaterThan(0);
    const logged = new Set(records.map((r) => `${r.key} ${r.op}`));
    expect(
      acked.filter((o) => !logged.has(`${o.key} ${o.input as string}`)).length,
      "client acknowledgements missing from the node logs",
    ).toBe(0);
    expect(
      verdict.superseded.map((r) => `${r.key} ${r.op} (${r.node})`),
      "acknowledged by a superseded owner",
    ).toEqual([]);
    expect(
      verdict.beyond.map((r) => `${r.key} ${r.op} (${r.node})`),
      "acknowledged writes lost beyond the restart",
    ).toEqual([]);
    // Client-side: every acknowledged add it lost is one of the documented ones.
    const documented = new Set(verdict.documented.map((r) => `${r.key} ${r.op}`));
    expect(clientLost.filter((o) => !documented.has(`${o.key} ${o.input as string}`)).length).toBe(0);
    expect(overlaps.keysWithOverlap, "keys acknowledged by two nodes at overlapping times").toEqual([]);
    for (const f of final.values()) expect(f.n, "count matches the applied ids").toBe(f.ops.length);
  }, 180_000);
});
