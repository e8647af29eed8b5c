// This node's inbox: one subscription on the node subject, a buffer for what arrives before the
// node is built, and the demultiplexer that validates each request and serves it: asks (with
// the dedupe cache) and tells through the dispatcher, pulls and acks of hand-offs, replica
// copies. Replies leave through `#reply`, the one place an answer is published.
import type { Clock, Logger, MessageHeaders, Transport, TransportSubscription } from "@keyhold/core";
import { encodeOk } from "./ask-codec.js";
import type { Batcher } from "./batch.js";
import { checkEntry } from "./batch-codec.js";
import { answerCopy, serveCopyBatch } from "./copy-batch.js";
import { type DedupeCache, DedupeEntry } from "./dedupe.js";
import type { Dispatcher } from "./dispatch.js";
import { ActorErrorCode, QuorumError, toWireError } from "./errors.js";
import { InboundAsk } from "./inbound-ask.js";
import type { Replicator } from "./replication.js";
import type { Router } from "./router.js";
import { errorType, type Telemetry } from "./telemetry.js";
import { type BatchMessage, decodeRequest, encode, type HandlerMessage, isError, MAX_HOPS } from "./wire.js";

/** Requests kept while the node is being built; more are dropped (the senders retry). */
export const EARLY_LIMIT = 100_000;

export interface InboundStats {
  served: number;
  redirected: number;
  deduplicated: number;
  malformed: number;
  tellsDropped: number;
  /** Batches received, and their entries dropped as malformed (each counted in `malformed` too). */
  batches: number;
  malformedEntries: number;
  /** Requests dropped while the node started: over EARLY_LIMIT or startupBufferBytes. */
  earlyDropped: number;
}

export interface InboundServices {
  readonly nodeId: string;
  readonly clock: Clock;
  /** Undefined for a client, which hosts nothing. */
  readonly dispatcher: Dispatcher | undefined;
  readonly replicator: Replicator | undefined;
  readonly router: Router;
  readonly dedupe: DedupeCache;
  /** The owner this node sees for a key, for "moved" replies. */
  readonly ownerOf: (key: string) => string | undefined;
  readonly telemetry: Telemetry;
  /** Where replies to batched asks are queued (one reply batch per asker and turn). */
  readonly batcher: Batcher;
}

export class Inbound {
  readonly #transport: Transport;
  readonly #logger: Logger;
  #sub: TransportSubscription | undefined;
  #services: InboundServices | undefined;
  #early: [Uint8Array, string | undefined, MessageHeaders | undefined][] | undefined = [];
  #earlyBytes = 0;
  readonly #earlyMaxBytes: number;
  readonly stats: InboundStats = {
    served: 0,
    redirected: 0,
    deduplicated: 0,
    malformed: 0,
    tellsDropped: 0,
    batches: 0,
    malformedEntries: 0,
    earlyDropped: 0,
  };

  /** `startupBufferBytes`: most bytes of requests kept until `serve` (see options.ts). */
  constructor(transport: Transport, logger: Logger, startupBufferBytes: number) {
    this.#transport = transport;
    this.#logger = logger;
    this.#earlyMaxBytes = startupBufferBytes;
  }

  /** Subscribes to `subject` before the node joins: peers may route to it once they see its heartbeat. */
  async listen(subject: string): Promise<void> {
    this.#sub = this.#transport.subscribe(subject, (m) => this.handle(m.data, m.reply, m.headers));
    await this.#transport.flush();
  }

  /** Starts serving with the node's parts, then serves whatever arrived before. */
  serve(services: InboundServices): void {
    this.#services = services;
    const early = this.#early ?? [];
    this.#early = undefined;
    this.#earlyBytes = 0;
    for (const [data, reply, headers] of early) this.handle(data, reply, headers);
  }

  /** Handles one request that arrived on this node's subject. */
  handle(data: Uint8Array, reply: string | undefined, headers?: MessageHeaders): void {
    const svc = this.#services;
    if (svc === undefined) {
      const early = this.#early;
      if (!early) return;
      const bytes = data.length + (reply?.length ?? 0);
      if (early.length < EARLY_LIMIT && this.#earlyBytes + bytes <= this.#earlyMaxBytes) {
        early.push([data, reply, headers]);
        this.#earlyBytes += bytes;
      } else this.stats.earlyDropped++;
      return;
    }
    const msg = decodeRequest(data);
    if (isError(msg)) {
      this.stats.malformed++;
      this.#logger.debug(`node ${svc.nodeId}: dropped a malformed request: ${msg.error}`);
      return;
    }
    const respond = (d: Uint8Array) => {
      if (reply) this.#reply(svc.nodeId, reply, d);
    };
    const dispatcher = svc.dispatcher;
    switch (msg.k) {
      case "batch":
        return this.#serveBatch(svc, msg, reply);
      case "ask":
        if (!reply || !dispatcher) {
          this.stats.malformed++;
          return;
        }
        if (svc.telemetry.on)
          return svc.telemetry.serverAsk(msg, headers, (end) =>
            this.#serveAsk(svc, dispatcher, msg, (d, error) => {
              respond(d);
              end(error);
            }),
          );
        return this.#serveAsk(svc, dispatcher, msg, respond);
      case "tell":
        if (!dispatcher) {
          this.stats.malformed++;
          return;
        }
        return this.#serveTell(svc, dispatcher, msg);
      case "pull":
        if (!reply || !dispatcher) {
          this.stats.malformed++;
          return;
        }
        dispatcher.servePull(msg.p, msg.from, respond, msg.c, msg.ep).catch((err: unknown) => {
          this.#logger.error(
            `node ${svc.nodeId}: answering a pull of partition ${msg.p} failed: ${String(err)}`,
          );
        });
        return;
      case "ack":
        dispatcher?.ack(msg.p, msg.from, msg.ep ?? 0);
        return;
      case "rep":
        if (!svc.replicator) {
          this.stats.malformed++;
          return;
        }
        respond(answerCopy(svc.replicator, msg));
        return;
      case "reps":
        // Copies batched per replica (copy-batch.ts): each entry answered as if it came alone.
        if (!svc.replicator || !reply) {
          this.stats.malformed++;
          return;
        }
        respond(serveCopyBatch(svc.replicator, msg, () => this.stats.malformed++));
        return;
    }
  }

  /**
   * Publishes a reply; one the server refuses (larger than its max_payload) becomes an error
   * reply, so the caller hears why instead of waiting out its deadline.
   */
  #reply(nodeId: string, subject: string, data: Uint8Array): void {
    try {
      this.#transport.publish(subject, data);
    } catch (err) {
      this.#logger.warn(`node ${nodeId}: reply of ${data.length} bytes not sent: ${String(err)}`);
      try {
        this.#transport.publish(
          subject,
          encode({
            v: 1,
            k: "err",
            e: {
              code: ActorErrorCode.NotSerializable,
              message: `The reply (${data.length} bytes) could not be sent: ${String(err).slice(0, 200)}`,
              name: "NotSerializableError",
            },
          }),
        );
      } catch {
        // The connection itself is gone; the caller's deadline covers it.
      }
    }
  }

  /** Serves each entry of a batch on its own: a malformed one is counted, logged and dropped. */
  #serveBatch(svc: InboundServices, batch: BatchMessage, reply: string | undefined): void {
    this.stats.batches++;
    // Answer on the message's NATS reply subject when it has one (the sender sets it to the same
    // inbox as `rs`), so a node user limited to allow_responses can answer.
    const rs = reply || batch.rs;
    const dispatcher = svc.dispatcher;
    const now = svc.clock.now();
    for (const entry of batch.m as unknown[]) {
      const msg = dispatcher ? checkEntry(entry, rs) : "this node hosts nothing";
      if (typeof msg === "string" || !dispatcher) {
        this.stats.malformed++;
        this.stats.malformedEntries++;
        this.#logger.debug(`node ${svc.nodeId}: dropped a malformed batch entry: ${String(msg)}`);
        continue;
      }
      if (msg.k === "tell") {
        this.#serveTell(svc, dispatcher, msg);
        continue;
      }
      const q = (entry as [number, unknown])[0];
      if (svc.telemetry.on) {
        const respond = (d: Uint8Array) => this.replyInBatch(svc, rs, q, d);
        svc.telemetry.serverAsk(msg, undefined, (end) =>
          this.#serveAsk(svc, dispatcher, msg, (d, error) => {
            respond(d);
            end(error);
          }),
        );
      } else this.#serveBatched(svc, dispatcher, msg, rs, q, now);
    }
  }

  /** @internal Queues the reply to ask `q` of a batch whose replies go to `rs`. */
  replyInBatch(svc: InboundServices, rs: string, q: number, d: Uint8Array): void {
    svc.batcher.reply(rs, q, d.length <= svc.batcher.limitBytes ? d : this.#tooLarge(svc.nodeId, d.length));
  }

  /** An ask of a batch without telemetry: one InboundAsk object carries it to its reply. */
  #serveBatched(
    svc: InboundServices,
    dispatcher: Dispatcher,
    msg: HandlerMessage,
    rs: string,
    q: number,
    now: number,
  ): void {
    const dedupe = svc.dedupe;
    let entry: DedupeEntry | undefined;
    if (dedupe.enabled) {
      const seen = dedupe.open(msg.id, now);
      if (seen instanceof Uint8Array) {
        this.stats.deduplicated++;
        return this.replyInBatch(svc, rs, q, seen);
      }
      if (!(seen instanceof DedupeEntry)) {
        this.stats.deduplicated++;
        void seen.then((d) => this.replyInBatch(svc, rs, q, d));
        return;
      }
      entry = seen;
    }
    dispatcher.deliver(msg.t, msg.key, msg.h, msg.a, msg.id, new InboundAsk(this, svc, msg, entry, rs, q));
  }

  /** The error reply that replaces one too large to send. */
  #tooLarge(nodeId: string, bytes: number): Uint8Array {
    this.#logger.warn(`node ${nodeId}: reply of ${bytes} bytes is over max_payload, not sent`);
    return encode({
      v: 1,
      k: "err",
      e: {
        code: ActorErrorCode.NotSerializable,
        message: `The reply (${bytes} bytes) is larger than the server's max_payload`,
        name: "NotSerializableError",
      },
    });
  }

  #serveAsk(
    svc: InboundServices,
    dispatcher: Dispatcher,
    msg: HandlerMessage,
    respond: (d: Uint8Array, error?: string) => void,
    /** The clock reading of the batch this ask came in, read once per batch. */
    now?: number,
  ): void {
    const dedupe = svc.dedupe;
    let entry: DedupeEntry | undefined;
    if (dedupe.enabled) {
      const seen = dedupe.open(msg.id, now ?? svc.clock.now());
      if (seen instanceof Uint8Array) {
        this.stats.deduplicated++;
        return respond(seen);
      }
      if (!(seen instanceof DedupeEntry)) {
        this.stats.deduplicated++;
        void seen.then(respond);
        return;
      }
      entry = seen;
    }
    dispatcher.dispatch(
      msg.t,
      msg.key,
      msg.h,
      msg.a,
      (o) => {
        if ("moved" in o) {
          this.stats.redirected++;
          const moved = encode({ v: 1, k: "moved", owner: svc.ownerOf(msg.key) ?? null });
          if (entry !== undefined) dedupe.forget(entry, moved);
          return respond(moved);
        }
        this.stats.served++;
        const out = o.ok ? encodeOk(o.result) : encode({ v: 1, k: "err", e: toWireError(o.error) });
        // A missed replica quorum is not remembered: the router retries it (router.ts), and the
        // entity's recent asks answer the retry without applying it again.
        if (entry !== undefined && !o.ok && o.error instanceof QuorumError) dedupe.forget(entry, out);
        else if (entry !== undefined) dedupe.close(entry, out);
        respond(out, o.ok ? undefined : errorType(o.error));
      },
      msg.id,
    );
  }

  #serveTell(svc: InboundServices, dispatcher: Dispatcher, msg: HandlerMessage): void {
    dispatcher.dispatch(msg.t, msg.key, msg.h, msg.a, (o) => {
      if ("moved" in o) {
        if (msg.hop >= MAX_HOPS || !svc.router.forward(msg.t, msg.key, msg.h, msg.a, msg.id, msg.hop + 1)) {
          this.stats.tellsDropped++;
        }
        return;
      }
      this.stats.served++;
      if (!o.ok)
        this.#logger.debug(
          `node ${svc.nodeId}: tell ${msg.t}/${msg.key}.${msg.h} failed: ${String(o.error)}`,
        );
    });
  }

  /** Stops listening. */
  close(): void {
    this.#sub?.unsubscribe();
    this.#early = undefined;
  }
}
