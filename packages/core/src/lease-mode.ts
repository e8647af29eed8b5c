// The effective lease mode of a starting node (`leases: "auto" | "jetstream" | "echo"`), and
// the heartbeat stream behind "jetstream". "auto" picks JetStream when the account has it; a
// server that advertises JetStream is waited for (jetstream-ready.ts), so a NATS cluster still
// electing its meta leader at start does not silently give a node echo leases.
import { JetStreamUnavailableError } from "./errors.js";
import { type HeartbeatStream, NatsHeartbeatStream } from "./heartbeat-stream.js";
import { advertisesJetStream, isJetStreamAnswer, jetStreamApiError } from "./jetstream-ready.js";
import type { LeaseMode, ParsedOptions } from "./options.js";
import { NatsTransport, type Transport } from "./transport.js";
import { subjects } from "./wire.js";

/**
 * The effective lease mode, and the heartbeat stream in jetstream mode. "auto" picks jetstream
 * when the account has JetStream; "jetstream" without it fails. Observers only track the ring:
 * they need the mode (the config check compares it) but never the stream.
 */
export async function resolveLeases(
  opts: ParsedOptions,
  transport: Transport,
  nodeId: string,
): Promise<{ leases: LeaseMode; stream: HeartbeatStream | undefined }> {
  if (opts.leases === "echo") return { leases: "echo", stream: undefined };
  const nc = transport instanceof NatsTransport ? transport.connection : undefined;
  if (nc === undefined) {
    if (opts.leases === "auto") return { leases: "echo", stream: undefined };
    throw new JetStreamUnavailableError(
      '`leases: "jetstream"` needs a NATS connection (`servers` or `connection`), not a custom `transport`',
    );
  }
  // A server without JetStream says so in its INFO: no request (nor permission violation) needed.
  if (opts.leases === "auto" && !advertisesJetStream(nc)) return { leases: "echo", stream: undefined };
  // One that advertises it is asked until its API answers (a NATS cluster still electing its
  // meta leader does not answer yet), for up to JETSTREAM_READY_MS (jetstream-ready.ts).
  const err = await jetStreamApiError(nc, { clock: opts.clock, timeoutMs: 2000 });
  if (err !== undefined) {
    if (opts.leases === "jetstream")
      throw new JetStreamUnavailableError(
        `\`leases: "jetstream"\` needs JetStream on the NATS account, but its API did not answer (${String(err)}). Enable JetStream on the servers (and the account), or use leases: "echo" or "auto".`,
        { cause: err },
      );
    // A refusal (no JetStream for this account or user) is a deployment's choice; silence for
    // the whole wait is not.
    if (isJetStreamAnswer(err))
      opts.logger.info(`node ${nodeId}: no JetStream for this NATS account (${String(err)}); echo leases`);
    else
      opts.logger.warn(
        `node ${nodeId}: the NATS server advertises JetStream but its API did not answer (${String(err)}); leases: "auto" takes echo leases, which do not protect against a NATS cluster split`,
      );
    return { leases: "echo", stream: undefined };
  }
  if (opts.observer) return { leases: "jetstream", stream: undefined };
  const stream = await NatsHeartbeatStream.open(
    nc,
    opts.cluster,
    subjects(opts.cluster).memberHeartbeats,
    opts.logger,
    opts.clock,
  );
  return { leases: "jetstream", stream };
}
