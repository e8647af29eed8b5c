// Whether a NATS account's JetStream API answers, asked patiently when the server says it has
// JetStream. A NATS cluster still electing its JetStream meta leader (seconds on a loaded
// machine) advertises JetStream in its INFO but does not answer API requests yet; a node that
// took that for "no JetStream" would silently run without the NATS-split guarantee (echo leases,
// local fencing tokens). The lease mode (lease-mode.ts), the heartbeat stream
// (heartbeat-stream.ts) and the epoch bucket (@keyhold/actors epochs.ts) all ask through here.
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Clock } from "./clock.js";

/**
 * How long a server that advertises JetStream is asked before its API is taken as absent. Once
 * a meta group has its quorum back, nats-server's raft still takes its election timeout (4-9 s)
 * to elect a leader, on top of the time the servers take to come back: 10 s left no margin.
 */
export const JETSTREAM_READY_MS = 30_000;
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

/**
 * Whether `err` is the JetStream API's answer rather than its silence, so asking again cannot
 * change it: a permissions error, or the server saying JetStream is not enabled for the account
 * (a server with JetStream advertises it to every account, also to one without it).
 */
export function isJetStreamAnswer(err: unknown): boolean {
  if (isPermissionError(err) || /not enabled for account/i.test(String(err))) return true;
  // nats.js wraps the server's 10039 in a JetStreamNotEnabled whose cause is the API error; it
  // throws the same class for "no responders", which is silence, so the code is what counts.
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) {
    if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.JetStreamNotEnabledForAccount)
      return true;
  }
  return false;
}

export interface AskOptions {
  readonly clock: Clock;
  /** How long to keep asking, ms of `clock.monoNow()`; 0 asks once. */
  readonly readyMs: number;
  /** Errors that end the asking at once (default: none). */
  readonly isFinal?: (err: unknown) => boolean;
}

/**
 * Runs `attempt` until it resolves: undefined then, else the last error. Asked again
 * JETSTREAM_RETRY_MS after each failure while a next ask can start within `readyMs` of the
 * first; an error `isFinal` accepts is returned at once.
 */
export async function askUntilReady(attempt: () => Promise<unknown>, o: AskOptions): Promise<unknown> {
  const until = o.clock.monoNow() + o.readyMs;
  for (;;) {
    try {
      await attempt();
      return undefined;
    } catch (err) {
      if (o.isFinal?.(err) === true || o.clock.monoNow() + JETSTREAM_RETRY_MS > until) return err;
      await new Promise<void>((resolve) => {
        o.clock.setTimeout(resolve, JETSTREAM_RETRY_MS);
      });
    }
  }
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
 * error. A server that advertises JetStream is asked for up to `readyMs`; one that does not is
 * asked once. An answer that is a refusal (isJetStreamAnswer) is final at once.
 */
export function jetStreamApiError(nc: NatsConnection, o: JetStreamReadyOptions): Promise<unknown> {
  return askUntilReady(
    async () => {
      const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: o.timeoutMs });
      await jsm.getAccountInfo();
    },
    {
      clock: o.clock,
      readyMs: advertisesJetStream(nc) ? (o.readyMs ?? JETSTREAM_READY_MS) : 0,
      isFinal: isJetStreamAnswer,
    },
  );
}
