// The ceiling of the replication benchmark: a plain nats.js responder in a process of its own that
// answers every request on one subject with fixed bytes, no decoding. argv: servers, subject,
// reply (hex). Tells its parent "ready" over IPC once subscribed; the parent kills it when done.
import { connect } from "@nats-io/transport-node";

const [servers = "", subject = "", replyHex = ""] = process.argv.slice(2);

try {
  const nc = await connect({ servers, name: `keyhold-bench-rep-echo-${process.pid}` });
  const reply = Uint8Array.from(Buffer.from(replyHex, "hex"));
  nc.subscribe(subject, {
    callback: (err, msg) => {
      if (!err) msg.respond(reply);
    },
  });
  await nc.flush();
  process.send?.({ type: "ready" });
} catch (err) {
  process.send?.({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  setTimeout(() => process.exit(1), 50);
}
