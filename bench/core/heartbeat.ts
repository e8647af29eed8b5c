// Heartbeat traffic with 10 and then 50 live members on one nats-server: messages and bytes per
// second published to and fanned out by the server, from its /varz counters and a plain subscriber.
import { DEFAULT_HEARTBEAT_MS, membershipSubjects, ShardNode, silentLogger } from "@keyhold/core";
import { NatsServer, waitFor } from "@keyhold/testing";
import { connect } from "@nats-io/transport-node";
import { type BenchContext, type Row, sleep } from "../harness.js";

/** Short so a window holds many beats; rates are also scaled to the default period. */
const HEARTBEAT_MS = 200;
/** Long on purpose: 50 nodes share this process's event loop and must not expire each other. */
const TTL_MS = 6000;
const STEPS = [10, 50] as const;

interface Varz {
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
  now: string;
  version: string;
}

interface Snapshot {
  readonly varz: Varz;
  readonly subMsgs: number;
  readonly subBytes: number;
  readonly sent: number;
  readonly accepted: number;
  readonly cpu: NodeJS.CpuUsage;
}

export async function heartbeatTraffic(ctx: BenchContext): Promise<void> {
  const windowMs = ctx.quick ? 3000 : 10_000;
  await using server = await NatsServer.start();
  const cluster = `bench-hb-${process.pid}`;
  const subject = membershipSubjects(cluster).heartbeat;
  const nodes: ShardNode[] = [];
  const watcher = await connect({ servers: server.url, name: "keyhold-bench-watcher" });
  let subMsgs = 0;
  let subBytes = 0;
  watcher.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return;
      subMsgs++;
      subBytes += msg.data.length;
    },
  });
  await watcher.flush();

  const snapshot = async (): Promise<Snapshot> => {
    const varz = await getVarz(server.monitorUrl);
    let sent = 0;
    let accepted = 0;
    for (const n of nodes) {
      const s = n.stats();
      sent += s.heartbeatsSent;
      accepted += s.heartbeatsAccepted;
    }
    return { varz, subMsgs, subBytes, sent, accepted, cpu: process.cpuUsage() };
  };

  const rows: Row[] = [];
  try {
    ctx.info("natsServer", (await getVarz(server.monitorUrl)).version);
    for (const target of STEPS) {
      ctx.log(`heartbeat traffic: starting members up to ${target}`);
      while (nodes.length < target) {
        nodes.push(
          await ShardNode.start({
            servers: server.url,
            cluster,
            nodeId: `hb-${String(nodes.length).padStart(3, "0")}`,
            heartbeatMs: HEARTBEAT_MS,
            ttlMs: TTL_MS,
            logger: silentLogger,
          }),
        );
      }
      await waitFor(() => nodes.every((n) => n.members().length === target), {
        timeout: 15_000,
        message: `members did not converge on ${target}`,
      });
      // Let the join-time syncs drain so the window holds only steady-state heartbeats.
      await sleep(2 * HEARTBEAT_MS);
      const before = await snapshot();
      await sleep(windowMs);
      const after = await snapshot();
      if (!nodes.every((n) => n.members().length === target)) {
        throw new Error(`membership changed during the window (nodes missed each other's heartbeats)`);
      }

      const seconds = (Date.parse(after.varz.now) - Date.parse(before.varz.now)) / 1000;
      const per = (a: number, b: number) => (a - b) / seconds;
      const watched = per(after.subMsgs, before.subMsgs);
      const inMsgs = per(after.varz.in_msgs, before.varz.in_msgs);
      const inBytes = per(after.varz.in_bytes, before.varz.in_bytes);
      // The bench's own subscriber gets one copy of each heartbeat; leave it out of the fan-out.
      const outMsgs = per(after.varz.out_msgs, before.varz.out_msgs) - watched;
      const outBytes =
        per(after.varz.out_bytes, before.varz.out_bytes) - per(after.subBytes, before.subBytes);
      const msgSize = (after.subBytes - before.subBytes) / Math.max(1, after.subMsgs - before.subMsgs);
      const sent = per(after.sent, before.sent);
      const accepted = per(after.accepted, before.accepted);
      const cpuMs = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / 1000;
      const scale = HEARTBEAT_MS / DEFAULT_HEARTBEAT_MS;
      const m = `[${target}]`;
      ctx.figure(`heartbeat.inMsgsPerSec${m}`, inMsgs, "msg/s");
      ctx.figure(`heartbeat.outMsgsPerSec${m}`, outMsgs, "msg/s");
      ctx.figure(`heartbeat.inBytesPerSec${m}`, inBytes, "B/s");
      ctx.figure(`heartbeat.outBytesPerSec${m}`, outBytes, "B/s");
      ctx.figure(`heartbeat.inMsgsPerSecAtDefault${m}`, inMsgs * scale, "msg/s");
      ctx.figure(`heartbeat.outMsgsPerSecAtDefault${m}`, outMsgs * scale, "msg/s");
      ctx.figure(`heartbeat.inBytesPerSecAtDefault${m}`, inBytes * scale, "B/s");
      ctx.figure(`heartbeat.outBytesPerSecAtDefault${m}`, outBytes * scale, "B/s");
      ctx.figure(`heartbeat.messageBytes${m}`, msgSize, "B");
      ctx.figure(`heartbeat.sentPerSec${m}`, sent, "msg/s");
      ctx.figure(`heartbeat.acceptedPerSec${m}`, accepted, "msg/s");
      ctx.figure(`heartbeat.cpuPercent${m}`, (cpuMs / (seconds * 1000)) * 100, "%");
      rows.push({
        members: target,
        "window s": seconds,
        "in msg/s": inMsgs,
        "out msg/s": outMsgs,
        "in B/s": inBytes,
        "out B/s": outBytes,
        "msg B": msgSize,
        "in msg/s @2s": inMsgs * scale,
        "out msg/s @2s": outMsgs * scale,
        "out B/s @2s": outBytes * scale,
        "expected out @2s": (target * target) / (DEFAULT_HEARTBEAT_MS / 1000),
        "accepted/s": accepted,
        "bench CPU %": (cpuMs / (seconds * 1000)) * 100,
      });
    }
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    await watcher.close();
  }
  ctx.table(
    `Heartbeat traffic (heartbeat ${HEARTBEAT_MS} ms, measured over ${windowMs / 1000} s; "@2s" = scaled to the default ${DEFAULT_HEARTBEAT_MS} ms)`,
    rows,
    "in = heartbeats published to nats-server, out = copies it delivered to members (from /varz, minus the\n" +
      "bench's own subscriber); bytes are payload bytes. Every member receives every heartbeat, so out = members x in.\n" +
      "accepted/s = heartbeats members accepted (ShardNode stats). bench CPU % = this process, which hosts all members.",
  );
}

async function getVarz(monitorUrl: string): Promise<Varz> {
  const res = await fetch(`${monitorUrl}/varz`);
  if (!res.ok) throw new Error(`GET ${monitorUrl}/varz: HTTP ${res.status}`);
  return (await res.json()) as Varz;
}
