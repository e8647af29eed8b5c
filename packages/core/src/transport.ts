// The narrow messaging interface membership and routing use: NATS in production, a simulated
// bus in deterministic tests.
import {
  createInbox,
  type MsgHdrs,
  type NatsConnection,
  type Subscription as NatsSubscription,
  headers as natsHeaders,
} from "@nats-io/nats-core";
import { systemClock } from "./clock.js";
import { type Deadline, Deadlines } from "./deadlines.js";

/** NATS message headers (trace context, for one): name → value. */
export type MessageHeaders = Readonly<Record<string, string>>;

export interface InboundMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Where to publish an answer, when the sender asked for one. */
  readonly reply?: string | undefined;
  /** The message's headers, when it has any. */
  readonly headers?: MessageHeaders | undefined;
}

/** Why a request got no answer. */
export type RequestFailure = "no-responders" | "timeout" | "disconnected" | "other";

/** A transport request failed; `reason` tells a dead subject from a slow one. */
export class RequestFailedError extends Error {
  readonly reason: RequestFailure;
  constructor(reason: RequestFailure, subject: string, options?: { cause?: unknown }) {
    super(`request to ${subject} failed: ${reason}`, options);
    this.name = "RequestFailedError";
    this.reason = reason;
  }
}

function classify(err: unknown): RequestFailure {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 4; e = e.cause, i++) {
    const probe = e as Error & { isNoResponders?: () => boolean };
    if (
      e.name === "NoRespondersError" ||
      (typeof probe.isNoResponders === "function" && probe.isNoResponders())
    ) {
      return "no-responders";
    }
    if (e.name === "TimeoutError") return "timeout";
    if (/disconnect|closed/i.test(e.message)) return "disconnected";
  }
  return "other";
}

export interface TransportSubscription {
  unsubscribe(): void;
}

export type TransportStatus = "disconnected" | "reconnected";

export interface Transport {
  /**
   * Publishes without waiting. `reply` sets the message's NATS reply subject, so that a receiver
   * limited to `allow_responses` may answer there.
   */
  publish(subject: string, data: Uint8Array, headers?: MessageHeaders, reply?: string): void;
  /** Handlers are called synchronously per message, in order. With `queue`, one member of the group gets each message. */
  subscribe(
    subject: string,
    handler: (msg: InboundMessage) => void,
    opts?: { queue?: string },
  ): TransportSubscription;
  /** One request, first answer. Rejects with RequestFailedError on timeout or when nobody listens. */
  request(
    subject: string,
    data: Uint8Array,
    opts: { timeout: number; headers?: MessageHeaders | undefined },
  ): Promise<Uint8Array>;
  /** A fresh subject only this connection should receive on (honours the NATS inbox prefix). */
  inbox?(): string;
  /** The server's max_payload: the most bytes one message may carry. */
  maxPayload?(): number;
  /** Connection state changes; returns an unsubscribe function. */
  onStatus(listener: (status: TransportStatus) => void): () => void;
  /** Resolves when everything published so far reached the server. */
  flush(): Promise<void>;
  /** Releases what the transport owns (the connection, when it made it). */
  close(): Promise<void>;
}

function toNats(h: MessageHeaders): MsgHdrs {
  const out = natsHeaders();
  for (const [k, v] of Object.entries(h)) out.set(k, v);
  return out;
}

/** The first value of each header (nats.js keeps header names as sent). */
function fromNats(h: MsgHdrs): MessageHeaders {
  const out: Record<string, string> = {};
  for (const k of h.keys()) out[k] = h.get(k);
  return out;
}

interface PendingRequest {
  readonly subject: string;
  readonly deadline: Deadline;
  readonly resolve: (data: Uint8Array) => void;
  readonly reject: (err: RequestFailedError) => void;
}

/**
 * Transport over a nats.js connection. Requests share one wildcard reply subscription and one
 * timeout sweep (Deadlines) instead of nats.js's request(), which builds a timer,
 * a deferred and error objects for every request: that is most of a request's client-side
 * cost, and entity asks are requests.
 */
export class NatsTransport implements Transport {
  readonly #nc: NatsConnection;
  readonly #owned: boolean;
  readonly #listeners = new Set<(status: TransportStatus) => void>();
  readonly #subs = new Set<NatsSubscription>();
  readonly #inbox: string;
  readonly #pending = new Map<string, PendingRequest>();
  #replies: NatsSubscription | undefined;
  #seq = 0;
  readonly #deadlines = new Deadlines(systemClock);

  constructor(nc: NatsConnection, opts: { owned: boolean }) {
    this.#nc = nc;
    this.#owned = opts.owned;
    // Honour natsOptions.inboxPrefix, so a NATS user can be limited to its own reply subjects.
    this.#inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
    void this.#watch();
  }

  get connection(): NatsConnection {
    return this.#nc;
  }

  async #watch(): Promise<void> {
    for await (const s of this.#nc.status()) {
      const mapped: TransportStatus | undefined =
        s.type === "disconnect" ? "disconnected" : s.type === "reconnect" ? "reconnected" : undefined;
      if (mapped) for (const l of this.#listeners) l(mapped);
    }
  }

  publish(subject: string, data: Uint8Array, headers?: MessageHeaders, reply?: string): void {
    if (this.#nc.isClosed()) return;
    if (headers === undefined && reply === undefined) this.#nc.publish(subject, data);
    else
      this.#nc.publish(subject, data, {
        ...(reply === undefined ? {} : { reply }),
        ...(headers === undefined ? {} : { headers: toNats(headers) }),
      });
  }

  subscribe(
    subject: string,
    handler: (msg: InboundMessage) => void,
    opts?: { queue?: string },
  ): TransportSubscription {
    const sub = this.#nc.subscribe(subject, {
      ...(opts?.queue ? { queue: opts.queue } : {}),
      callback: (err, msg) => {
        if (err) return;
        const h = msg.headers;
        handler({ subject: msg.subject, data: msg.data, reply: msg.reply, headers: h && fromNats(h) });
      },
    });
    this.#subs.add(sub);
    return {
      unsubscribe: () => {
        this.#subs.delete(sub);
        if (!this.#nc.isClosed()) sub.unsubscribe();
      },
    };
  }

  /** The one subscription all replies arrive on: `<inbox>.<request id>`. */
  #ensureReplies(): void {
    if (this.#replies) return;
    const prefix = this.#inbox.length + 1;
    this.#replies = this.#nc.subscribe(`${this.#inbox}.*`, {
      callback: (err, msg) => {
        if (err) return;
        const id = msg.subject.slice(prefix);
        const p = this.#pending.get(id);
        if (!p) return; // late: already timed out
        this.#pending.delete(id);
        this.#deadlines.cancel(p.deadline);
        // The server answers a request nobody listens to with an empty 503 status message.
        if (msg.data.length === 0 && msg.headers?.code === 503)
          p.reject(new RequestFailedError("no-responders", p.subject));
        else p.resolve(msg.data);
      },
    });
  }

  request(
    subject: string,
    data: Uint8Array,
    opts: { timeout: number; headers?: MessageHeaders | undefined },
  ): Promise<Uint8Array> {
    if (this.#nc.isClosed()) return Promise.reject(new RequestFailedError("disconnected", subject));
    this.#ensureReplies();
    const id = (this.#seq++).toString(36);
    return new Promise<Uint8Array>((resolve, reject) => {
      const deadline = this.#deadlines.add(Date.now() + opts.timeout, () => {
        this.#pending.delete(id);
        reject(new RequestFailedError("timeout", subject));
      });
      this.#pending.set(id, { subject, deadline, resolve, reject });
      try {
        const reply = `${this.#inbox}.${id}`;
        if (opts.headers === undefined) this.#nc.publish(subject, data, { reply });
        else this.#nc.publish(subject, data, { reply, headers: toNats(opts.headers) });
      } catch (err) {
        this.#pending.delete(id);
        this.#deadlines.cancel(deadline);
        reject(new RequestFailedError(classify(err), subject, { cause: err }));
      }
    });
  }

  inbox(): string {
    return createInbox((this.#nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  }

  maxPayload(): number {
    return this.#nc.info?.max_payload ?? 1024 * 1024;
  }

  onStatus(listener: (status: TransportStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async flush(): Promise<void> {
    if (!this.#nc.isClosed()) await this.#nc.flush();
  }

  async close(): Promise<void> {
    for (const s of this.#subs) if (!this.#nc.isClosed()) s.unsubscribe();
    this.#subs.clear();
    this.#listeners.clear();
    if (this.#replies && !this.#nc.isClosed()) this.#replies.unsubscribe();
    this.#replies = undefined;
    this.#deadlines.close();
    for (const p of this.#pending.values()) p.reject(new RequestFailedError("disconnected", p.subject));
    this.#pending.clear();
    if (this.#owned && !this.#nc.isClosed()) {
      await this.#nc.drain().catch(() => this.#nc.close());
    }
  }
}
