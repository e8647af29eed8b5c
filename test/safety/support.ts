// Shared load and verdicts of the safety tests: clients issue adds, register writes and reads
// with unique op ids while a fault runs, every operation recorded in a history; afterwards the
// final state, the node-side acknowledgement logs and the history are judged.
import { fileURLToPath } from "node:url";
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import {
  type AckRecord,
  analyzeAcks,
  checkLinearizable,
  HistoryRecorder,
  lostWrites,
  registerModel,
  ShardingProcess,
  type ShardingProcessOptions,
  waitFor,
} from "@keyhold/testing";
import { expect } from "vitest";
import {
  type LoadTypes,
  OpCounter,
  OpRegister,
  REPLICATED,
  StoredOpCounter,
  StoredOpRegister,
} from "./entities.js";

export const ENTITIES = fileURLToPath(new URL("./entities.ts", import.meta.url));
/** Short leases keep the tests quick: lease L = 800 ms, take-over after 1000 ms. */
export const LEASE = { heartbeatMs: 200, ttlMs: 1000, skewMs: 500 } as const;
export const COUNTERS = Array.from({ length: 24 }, (_, i) => `c${i}`);
export const REGISTERS = Array.from({ length: 24 }, (_, i) => `r${i}`);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Node `i` connects to `servers[i % servers.length]`. */
export function spawnNodes(
  servers: string | readonly string[],
  cluster: string,
  n: number,
  extra: Partial<ShardingProcessOptions> = {},
) {
  const list = Array.isArray(servers) ? servers : [servers as string];
  return Promise.all(
    Array.from({ length: n }, (_, i) => {
      const o: ShardingProcessOptions = {
        servers: list[i % list.length]!,
        cluster,
        nodeId: `n${i}`,
        ...LEASE,
        handoffTimeoutMs: 5000,
        // Back quickly once a cut link heals.
        natsOptions: { reconnectTimeWait: 100, maxReconnectAttempts: -1, pingInterval: 1000 },
        ...extra,
      };
      return ShardingProcess.spawn(o, ENTITIES);
    }),
  );
}

/**
 * Waits until `c` sees `n` members, none of them still joining step by step (joinStepPartitions
 * "auto", the default): a test that times a fault against who owns what starts it after this.
 */
export function waitForSettledRing(c: Sharding, n: number, timeout = 20_000): Promise<void> {
  return waitFor(
    () => {
      const members = c.node.members();
      return members.length === n && members.every((m) => c.node.ring.capOf(m) === undefined);
    },
    { timeout, interval: 50, message: `the ring did not settle at ${n} members within ${timeout} ms` },
  );
}

export function connectClient(
  servers: string | string[],
  cluster: string,
  timeouts: { askTimeoutMs?: number; attemptTimeoutMs?: number; leases?: "echo" | "jetstream" } = {},
) {
  return Sharding.connect({
    servers,
    cluster,
    ...LEASE,
    entities: [OpCounter, OpRegister, StoredOpCounter, StoredOpRegister],
    logger: silentLogger,
    askTimeoutMs: 4000,
    ...timeouts,
  });
}

/**
 * `workers` clients, each one op at a time, until stop(): adds, register writes and reads, on
 * the counter and register types of `types` (replicated ones by default).
 */
export function runLoad(c: Sharding, workers = 16, prefix = "", types: LoadTypes = REPLICATED) {
  const [C, R] = [types.counter, types.register];
  const history = new HistoryRecorder();
  /** [key, op id] of every write acknowledged to a client. */
  const acked: [string, string][] = [];
  let stop = false;
  let seq = 0;
  let failed = 0;
  let total = 0;
  const worker = async (w: number) => {
    const name = `${prefix}client-${w}`;
    while (!stop) {
      const op = `${prefix}w${w}-${seq++}`;
      const pick = seq % 3;
      total++;
      if (pick === 0) {
        const key = COUNTERS[(seq * 7 + w) % COUNTERS.length]!;
        const h = history.invoke(name, `${C.type}/${key}`, "add", 1);
        try {
          await c.ref(C, key).add(op, 1);
          h.ok();
          acked.push([`${C.type}/${key}`, op]);
        } catch {
          failed++;
          h.info();
        }
      } else {
        const key = REGISTERS[(seq * 5 + w) % REGISTERS.length]!;
        if (pick === 1) {
          const h = history.invoke(name, `${R.type}/${key}`, "write", seq);
          try {
            await c.ref(R, key).write(op, seq);
            h.ok();
            acked.push([`${R.type}/${key}`, op]);
          } catch {
            failed++;
            h.info();
          }
        } else {
          const h = history.invoke(name, `${R.type}/${key}`, "read");
          try {
            h.ok(await c.ref(R, key).read());
          } catch {
            failed++;
            h.info();
          }
        }
      }
    }
  };
  const running = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    history,
    acked,
    get total() {
      return total;
    },
    get failed() {
      return failed;
    },
    async stop() {
      stop = true;
      await running;
    },
  };
}

/**
 * The verdicts every safety test asserts: no acknowledged write lost (by op id, from the
 * client's history and from the nodes' logs), no key with overlapping acknowledgements from
 * two nodes, every register key linearizable. Prints availability.
 */
export async function judge(
  label: string,
  c: Sharding,
  load: ReturnType<typeof runLoad>,
  acks: readonly AckRecord[],
): Promise<void> {
  const applied = new Map<string, Set<string>>();
  for (const k of COUNTERS) applied.set(`opcounter/${k}`, new Set(await c.ref(OpCounter, k).ops()));
  for (const k of REGISTERS) applied.set(`opregister/${k}`, new Set(await c.ref(OpRegister, k).ops()));
  // Acknowledged to a client (the promise kept to callers), by op id.
  const clientLost = load.acked
    .filter(([key, op]) => !applied.get(key)?.has(op))
    .map(([k, op]) => `${k} ${op}`);
  const clientAcked = load.acked.length;
  // The node-side logs: what each node acknowledged (a superset: some answers never arrived).
  const nodeLost = lostWrites(acks, (key) => applied.get(key));
  const ops = load.history.operations();
  const overlaps = analyzeAcks(acks);
  const registers = ops.filter((o) => o.key.startsWith("opregister/"));
  const lin = checkLinearizable(registers, registerModel(), { timeoutMs: 60_000 });
  const bad = lin.keys.filter((k) => k.verdict === "not-linearizable").map((k) => k.key);
  console.log(
    `[safety] ${label}: ${load.total} asks, ${load.failed} failed (availability ${(
      (100 * (load.total - load.failed)) / Math.max(1, load.total)
    ).toFixed(2)}%); ${clientAcked} writes acknowledged to clients, ${nodeLost.acked} in node logs ` +
      `(${acks.length} records); lost ${nodeLost.lost.length}; keys with two-owner overlap ${overlaps.keysWithOverlap.length}` +
      `${overlaps.longest ? ` (longest ${overlaps.longest.ms.toFixed(1)} ms on ${overlaps.longest.key})` : ""}; ` +
      `register keys not linearizable ${bad.length}, verdict ${lin.verdict}`,
  );
  const logged = new Set(acks.map((r) => `${r.key} ${r.op}`));
  expect(
    load.acked.filter(([k, op]) => !logged.has(`${k} ${op}`)).length,
    "client acknowledgements missing from the node logs",
  ).toBe(0);
  expect(clientLost, "writes acknowledged to clients, lost").toEqual([]);
  expect(
    nodeLost.lost.map((r) => `${r.key} ${r.op} (${r.node})`),
    "writes acknowledged by nodes, lost",
  ).toEqual([]);
  expect(overlaps.keysWithOverlap, "keys acknowledged by two nodes at overlapping times").toEqual([]);
  expect(bad, "non-linearizable register keys").toEqual([]);
  expect(lin.verdict).toBe("linearizable");
}
