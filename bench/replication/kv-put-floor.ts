// The floor of one store write (issue 10): lean conditional puts (kv-put.ts) to a JetStream KV
// bucket from one process, with no entity around them, closed loop at 64 in flight and in bursts
// published in one turn, printing nats-server's and this process's CPU per put and nats-server's
// read/write syscalls per put (/proc/<pid>/io):
//   node --conditions=@keyhold/source --import tsx bench/replication/kv-put-floor.ts [ms] [file|memory]
import { readFileSync } from "node:fs";
import { NatsTransport } from "@keyhold/core";
import { NatsServer } from "@keyhold/testing";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { leanPut } from "../../packages/actors/src/kv-put.js";
import { closedLoop } from "../actors/load.js";
import { cpuMicrosOf, ownCpuMicros } from "./processes.js";

function io(pid: number): { r: number; w: number } {
  const t = readFileSync(`/proc/${pid}/io`, "utf8");
  const g = (k: string) => Number(new RegExp(`${k}: (\\d+)`).exec(t)?.[1] ?? Number.NaN);
  return { r: g("syscr"), w: g("syscw") };
}

const runMs = Number(process.argv[2] ?? 2500);
const storage = process.argv[3] === "memory" ? "memory" : "file";
await using server = await NatsServer.start({ jetstream: true });
const nc = await connect({ servers: server.url });
const bucket = `put_floor_${process.pid}`;
await new Kvm(nc).create(bucket, { history: 1, allow_direct: false, storage });
const t = new NatsTransport(nc, { owned: false });
// About the size of a bench counter's entry (state, version, 8 remembered ask ids, epoch).
const data = new Uint8Array(230);
const keys = Array.from({ length: 5000 }, (_, i) => `key-${100_000 + i}`);
const rev = new Map<string, number>();
const subject = (k: string) => `$KV.${bucket}.floor.${k}`;
const put = async (k: string) => {
  const a = await leanPut(t, subject(k), data, rev.get(k) ?? 0, 5000);
  if (a.seq === undefined) throw new Error(a.error.text);
  rev.set(k, a.seq);
};
for (const k of keys) await put(k);

async function measure(name: string, f: () => Promise<number>): Promise<void> {
  const s0 = cpuMicrosOf(server.pid);
  const c0 = ownCpuMicros();
  const i0 = io(server.pid);
  const t0 = performance.now();
  const n = await f();
  const sec = (performance.now() - t0) / 1000;
  const s1 = cpuMicrosOf(server.pid);
  const c1 = ownCpuMicros();
  const i1 = io(server.pid);
  const per = (x: number) => (x / n).toFixed(2);
  process.stdout.write(
    `${name} (${storage}): puts/s ${Math.round(n / sec)}, nats-server CPU us/put ${per(s1 - s0)}, ` +
      `client CPU us/put ${per(c1 - c0)}, nats-server syscalls r/w per put ${per(i1.r - i0.r)}/${per(i1.w - i0.w)}\n`,
  );
}

for (let rep = 0; rep < 2; rep++) {
  await measure("closed loop c=64", async () => (await closedLoop(put, keys, 64, runMs)).completed);
  for (const size of [8, 21, 64]) {
    await measure(`bursts of ${size}`, async () => {
      let n = 0;
      const end = performance.now() + runMs;
      while (performance.now() < end) {
        const ps: Promise<void>[] = [];
        for (let j = 0; j < size; j++) ps.push(put(keys[n++ % keys.length]!));
        await Promise.all(ps);
      }
      return n;
    });
  }
}
await t.close();
await nc.close();
process.exit(0);
