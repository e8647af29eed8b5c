// Whether a NATS account's JetStream API answers, asked patiently when the server says it has
// JetStream. A NATS cluster still electing its JetStream meta leader (seconds on a loaded
// machine) advertises JetStream in its INFO but does not answer API requests yet; a node that
// took that for "no JetStream" would silently run without the NATS-split guarantee (echo leases,
// local fencing tokens). Both the lease mode (shard-node.ts) and the epoch bucket
// (@keyhold/actors epochs.ts) ask through here.
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Clock } from "./clock.js";

/** How long a server that advertises JetStream is asked before its API is taken as absent. */
export const JETSTREAM_READY_MS = 10_000;
/** The pause between two asks. */
export const JETSTREAM_RETRY_MS = 500;

/** Whether the server this connection is on says, in its INFO, that it has JetStream. */
export function advertisesJetStream(nc: NatsConnection): boolean {
  return (nc.info as { jetstream?: boolean } | undefined)?.jetstream === true;
}

/** A permissions error is an answer: the node's user may not use JetStream (asking again won't help). */
export function isPermissionError(err: unknown): boolean {
  return /permission/i.test(String(err));
}

export interface JetStreamReadyOptions {
  readonly clock: Clock;
  /** Timeout of one request, ms. */
  readonly timeoutMs: number;
  /** How long to keep asking when the server advertises JetStream (default JETSTREAM_READY_MS). */
  readonly readyMs?: number;
}

/**
 * Undefined once the account's JetStream API answers an account-info request; else the last
 * error. A server that advertises JetStream is asked again, JETSTREAM_RETRY_MS apart, for up to
 * `readyMs`; one that does not is asked once. A permissions error is final at once.
 */
export async function jetStreamApiError(nc: NatsConnection, o: JetStreamReadyOptions): Promise<unknown> {
  const until = o.clock.monoNow() + (advertisesJetStream(nc) ? (o.readyMs ?? JETSTREAM_READY_MS) : 0);
  for (;;) {
    try {
      const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: o.timeoutMs });
      await jsm.getAccountInfo();
      return undefined;
    } catch (err) {
      if (isPermissionError(err) || o.clock.monoNow() + JETSTREAM_RETRY_MS > until) return err;
      await pause(o.clock, JETSTREAM_RETRY_MS);
    }
  }
}

function pause(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.setTimeout(resolve, ms);
  });
}
