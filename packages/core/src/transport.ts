// The narrow messaging interface membership and routing use: NATS in production, a simulated
// bus in deterministic tests.
import type { NatsConnection, Subscription as NatsSubscription } from "@nats-io/nats-core";

export interface InboundMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Where to publish an answer, when the sender asked for one. */
  readonly reply?: string | undefined;
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
  publish(subject: string, data: Uint8Array): void;
  /** Handlers are called synchronously per message, in order. With `queue`, one member of the group gets each message. */
  subscribe(
    subject: string,
    handler: (msg: InboundMessage) => void,
    opts?: { queue?: string },
  ): TransportSubscription;
  /** One request, first answer. Rejects with RequestFailedError on timeout or when nobody listens. */
  request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<Uint8Array>;
  /** Connection state changes; returns an unsubscribe function. */
  onStatus(listener: (status: TransportStatus) => void): () => void;
  /** Resolves when everything published so far reached the server. */
  flush(): Promise<void>;
  /** Releases what the transport owns (the connection, when it made it). */
  close(): Promise<void>;
}

/** Transport over a nats.js connection. */
export class NatsTransport implements Transport {
  readonly #nc: NatsConnection;
  readonly #owned: boolean;
  readonly #listeners = new Set<(status: TransportStatus) => void>();
  readonly #subs = new Set<NatsSubscription>();

  constructor(nc: NatsConnection, opts: { owned: boolean }) {
    this.#nc = nc;
    this.#owned = opts.owned;
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

  publish(subject: string, data: Uint8Array): void {
    if (this.#nc.isClosed()) return;
    this.#nc.publish(subject, data);
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
        handler({ subject: msg.subject, data: msg.data, reply: msg.reply });
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

  async request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<Uint8Array> {
    try {
      const msg = await this.#nc.request(subject, data, { timeout: opts.timeout });
      return msg.data;
    } catch (err) {
      throw new RequestFailedError(classify(err), subject, { cause: err });
    }
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
    if (this.#owned && !this.#nc.isClosed()) {
      await this.#nc.drain().catch(() => this.#nc.close());
    }
  }
}
