// Heartbeat cost in both lease modes (issue 9), 10 and then 50 members on one nats-server with
// JetStream: messages through the server and CPU, per member. In echo mode a heartbeat is one
// core publish fanned out to every member; in jetstream mode it is also stored in the heartbeat
// stream (memory, one message per member subject) and answered with a PubAck.
import { DEFAULT_HEARTBEAT_MS, type LeaseMode, ShardNode, silentLogger } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import { type BenchContext, type Row, sleep } from "../harness.js";

const HEARTBEAT_MS = 200;
const TTL_MS = 6000;
const STEPS = [10, 50] as const;
const MODES: readonly LeaseMode[] = ["echo", "jetstream"];

interface Varz {
  in_msgs: number;
  out_msgs: number;
  cpu: number;
  now: string;
}

export async function leaseModeCost(ctx: BenchContext): Promise<void> {
  const windowMs = ctx.quick ? 3000 : 10_000;
  const rows: Row[] = [];
  for (const mode of MODES) {
    await using server = await NatsServer.start({ jetstream: true });
    const cluster = `bench-lm-${mode}-${process.pid}`;
    const nodes: ShardNode[] = [];
    try {
      for (const target of STEPS) {
        ctx.log(`lease modes: ${mode}, starting members up to ${target}`);
        while (nodes.length < target) {
          nodes.push(
            await ShardNode.start({
              servers: server.url,
              cluster,
              nodeId: `lm-${String(nodes.length).padStart(3, "0")}`,
              heartbeatMs: HEARTBEAT_MS,
              ttlMs: TTL_MS,
              leases: mode,
              logger: silentLogger,
            }),
          );
        }
        await waitFor(() => nodes.every((n) => n.members().length === target && n.leaseMode === mode), {
          timeout: 20_000,
          message: `members did not converge on ${target}`,
        });
        await sleep(2 * HEARTBEAT_MS);
        const v0 = await getVarz(server.monitorUrl);
        const c0 = process.cpuUsage();
        const a0 = nodes.reduce((s, n) => s + n.leaseStats().heartbeatsAcked, 0);
        const cpuSamples: number[] = [];
        const until = Date.now() + windowMs;
        while (Date.now() < until) {
          await sleep(Math.min(1000, until - Date.now()));
          cpuSamples.push((await getVarz(server.monitorUrl)).cpu);
        }
        const v1 = await getVarz(server.monitorUrl);
        const c1 = process.cpuUsage();
        const a1 = nodes.reduce((s, n) => s + n.leaseStats().heartbeatsAcked, 0);
        if (!nodes.every((n) => n.members().length === target && !n.fenced)) {
          throw new Error(`membership changed during the ${mode} window`);
        }
        const seconds = (Date.parse(v1.now) - Date.parse(v0.now)) / 1000;
        const inMsgs = (v1.in_msgs - v0.in_msgs) / seconds;
        const outMsgs = (v1.out_msgs - v0.out_msgs) / seconds;
        const acks = (a1 - a0) / seconds;
        const cpuMs = (c1.user + c1.system - c0.user - c0.system) / 1000;
        const nodeCpu = (cpuMs / (seconds * 1000)) * 100;
        const serverCpu = cpuSamples.reduce((s, x) => s + x, 0) / Math.max(1, cpuSamples.length);
        const scale = HEARTBEAT_MS / DEFAULT_HEARTBEAT_MS;
        const m = `[${mode},${target}]`;
        ctx.figure(`leaseModes.msgsPerSecPerMember${m}`, (inMsgs + outMsgs) / target, "msg/s");
        ctx.figure(
          `leaseModes.msgsPerSecPerMemberAtDefault${m}`,
          ((inMsgs + outMsgs) / target) * scale,
          "msg/s",
        );
        ctx.figure(`leaseModes.acksPerSec${m}`, acks, "ack/s");
        ctx.figure(`leaseModes.memberCpuPercent${m}`, nodeCpu / target, "%");
        ctx.figure(`leaseModes.serverCpuPercent${m}`, serverCpu, "%");
        rows.push({
          mode,
          members: target,
          "in msg/s": inMsgs,
          "out msg/s": outMsgs,
          "msg/s per member": (inMsgs + outMsgs) / target,
          "per member @2s": ((inMsgs + outMsgs) / target) * scale,
          "acks/s": acks,
          "CPU % per member": nodeCpu / target,
          "server CPU %": serverCpu,
        });
      }
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  }
  ctx.table(
    `Heartbeat cost by lease mode (heartbeat ${HEARTBEAT_MS} ms, ${windowMs / 1000} s windows, one nats-server with JetStream)`,
    rows,
    "in/out = messages into and out of nats-server (/varz), including PubAcks and JetStream traffic; per member =\n" +
      '(in + out) / members; "@2s" scales to the default 2000 ms heartbeat. CPU % per member = this process (which\n' +
      "hosts every member) / members; server CPU % = nats-server's own figure, averaged over the window.",
  );
}

async function getVarz(monitorUrl: string): Promise<Varz> {
  const res = await fetch(`${monitorUrl}/varz`);
  if (!res.ok) throw new Error(`GET ${monitorUrl}/varz: HTTP ${res.status}`);
  return (await res.json()) as Varz;
}
