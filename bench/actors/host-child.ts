// Process A of the ask benchmark: the only member of its ring, hosting every Counter, plus a raw
// NATS echo on a connection of its own (the ceiling remote asks are compared to). Driven over IPC.
// argv: servers, cluster, echo subject, echo reply (hex).
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { connect } from "@nats-io/transport-node";
import { entities } from "./entities.js";

type Command = { cmd: "stats" | "cpu" | "close"; req: number };

const [servers = "", cluster = "", echoSubject = "", replyHex = ""] = process.argv.slice(2);
const send = (m: unknown) => process.send?.(m);

try {
  const sharding = await Sharding.start({
    servers,
    cluster,
    entities,
    logger: silentLogger,
    // The run must not passivate anything between rounds: every entity stays live.
    idleMs: 0,
  });
  const nc = await connect({ servers, name: `keyhold-bench-echo-${process.pid}` });
  const reply = Uint8Array.from(Buffer.from(replyHex, "hex"));
  nc.subscribe(echoSubject, {
    callback: (err, msg) => {
      if (!err) msg.respond(reply);
    },
  });
  await nc.flush();
  process.on("message", async (m: Command) => {
    if (m.cmd === "cpu") send({ type: "reply", req: m.req, value: process.cpuUsage() });
    else if (m.cmd === "stats") {
      send({
        type: "reply",
        req: m.req,
        value: { stats: sharding.stats(), heapUsed: process.memoryUsage().heapUsed },
      });
    } else if (m.cmd === "close") {
      await sharding.close();
      await nc.drain();
      send({ type: "reply", req: m.req, value: null });
      process.disconnect();
      process.exit(0);
    }
  });
  send({ type: "ready", id: sharding.node.id });
} catch (err) {
  send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  setTimeout(() => process.exit(1), 50);
}
