// Batching per destination: asks, tells and replies bound for one subject within one turn of the
// event loop (its synchronous work and promise jobs) travel as one NATS message (a batch), split
// below the server's max_payload. Each ask keeps its own correlation number, deadline and
// error; its retry stays the router's. A reply batch leaves as soon as the turn that produced
// it ends, so a slow handler delays only its own reply. The envelope is in wire.ts and docs/reference/wire.md.
import {
  type Clock,
  type Deadline,
  type Deadlines,
  type Logger,
  RequestFailedError,
  type Transport,
  type TransportSubscription,
} from "@keyhold/core";
import { v4 as uuidv4 } from "uuid";
import { type BatchEntry, decodeReplyBatch, encodeBatch, encodeReplyBatch, isError } from "./wire.js";

/** Room left under max_payload for the envelope, the subject and headers. */
export const BATCH_HEADROOM_BYTES = 4096;
/** What msgpack adds per entry ([q, bin]) at most. */
const ENTRY_OVERHEAD = 16;
/** max_payload when the transport does not say (the NATS server's default). */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export interface BatchStats {
  /** Request batches published, and the asks and tells they carried. */
  batches: number;
  entries: number;
  /** Reply batches published, and the replies they carried. */
  replyBatches: number;
  replies: number;
  /** Reply entries (or whole reply batches) that failed validation and were dropped. */
  malformed: number;
  /** Replies that arrived for no pending ask (late, duplicated): ignored. */
  unmatched: number;
}

interface Pending {
  readonly subject: string;
  readonly deadline: Deadline;
  readonly resolve: (data: Uint8Array) => void;
  readonly reject: (err: Error) => void;
}

/** One ask's attempt in a batch: its reply, and a way to end it early (owner gone, ask stopped). */
export interface BatchedAttempt {
  readonly promise: Promise<Uint8Array>;
  readonly cancel: (err: Error) => void;
}

interface Queue {
  entries: BatchEntry[];
  bytes: number;
  /** For request batches: the asks in `entries` (q > 0), rejected together when publishing fails. */
  asks: number[];
}

export interface BatcherParams {
  readonly transport: Transport;
  readonly clock: Clock;
  readonly deadlines: Deadlines;
  readonly logger: Logger;
  readonly maxEntries: number;
  /**
   * Runs `fn` once the current turn's synchronous work and promise jobs are done. Default
   * queueMicrotask: asks issued together (a loop, or the continuations of one reply batch, which
   * all run in the same microtask drain) still share a batch, and a lone ask is not held back
   * for an event-loop iteration (setImmediate cost a quarter of the rate at concurrency 1).
   */
  readonly schedule?: (fn: () => void) => void;
}

/** The asker's side (requests and their replies) and the owner's side (reply batches) of batching. */
export class Batcher {
  readonly #p: BatcherParams;
  readonly #schedule: (fn: () => void) => void;
  readonly #requests = new Map<string, Queue>();
  readonly #replyQueues = new Map<string, Queue>();
  readonly #pending = new Map<number, Pending>();
  #inbox: string | undefined;
  #sub: TransportSubscription | undefined;
  #seq = 0;
  #scheduled = false;
  #closed = false;
  readonly stats: BatchStats = {
    batches: 0,
    entries: 0,
    replyBatches: 0,
    replies: 0,
    malformed: 0,
    unmatched: 0,
  };

  constructor(params: BatcherParams) {
    this.#p = params;
    this.#schedule = params.schedule ?? queueMicrotask;
  }

  /** Most bytes of one batch: below the server's max_payload. */
  get limitBytes(): number {
    const max = this.#p.transport.maxPayload?.() ?? DEFAULT_MAX_PAYLOAD;
    return Math.max(1024, max - BATCH_HEADROOM_BYTES);
  }

  /**
   * Sends one encoded ask to `subject` in the next batch; resolves with its encoded reply, or
   * rejects with RequestFailedError("timeout") after `timeoutMs`.
   */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.start(subject, data, timeoutMs).promise;
  }

  /** As `request`, with `cancel` to reject the attempt early (a late reply is then ignored). */
  start(subject: string, data: Uint8Array, timeoutMs: number): BatchedAttempt {
    if (this.#closed)
      return { promise: Promise.reject(new RequestFailedError("disconnected", subject)), cancel: () => {} };
    this.#ensureInbox();
    const q = ++this.#seq;
    const promise = new Promise<Uint8Array>((resolve, reject) => {
      const deadline = this.#p.deadlines.add(this.#p.clock.now() + timeoutMs, () => {
        this.#pending.delete(q);
        reject(new RequestFailedError("timeout", subject));
      });
      this.#pending.set(q, { subject, deadline, resolve, reject });
      this.#enqueue(this.#requests, subject, [q, data], q);
    });
    return { promise, cancel: (err) => this.#cancel(q, err) };
  }

  #cancel(q: number, err: Error): void {
    const p = this.#pending.get(q);
    if (!p) return;
    this.#pending.delete(q);
    this.#p.deadlines.cancel(p.deadline);
    p.reject(err);
  }

  /** Sends one encoded tell to `subject` in the next batch; nobody answers it. */
  send(subject: string, data: Uint8Array): void {
    if (this.#closed) return;
    this.#enqueue(this.#requests, subject, [0, data], 0);
  }

  /** Queues the reply to ask `q` of a batch whose replies go to `subject`. */
  reply(subject: string, q: number, data: Uint8Array): void {
    if (this.#closed) return;
    this.#enqueue(this.#replyQueues, subject, [q, data], 0);
  }

  #enqueue(queues: Map<string, Queue>, subject: string, entry: BatchEntry, q: number): void {
    let queue = queues.get(subject);
    const size = entry[1].length + ENTRY_OVERHEAD;
    if (queue && (queue.bytes + size > this.limitBytes || queue.entries.length >= this.#p.maxEntries)) {
      // Full: this one goes now, the new entry starts the next.
      queues.delete(subject);
      this.#publish(queues === this.#requests, subject, queue);
      queue = undefined;
    }
    if (!queue) {
      queue = { entries: [], bytes: 0, asks: [] };
      queues.set(subject, queue);
    }
    queue.entries.push(entry);
    queue.bytes += size;
    if (q > 0) queue.asks.push(q);
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(() => this.flush());
    }
  }

  /** Publishes everything queued. */
  flush(): void {
    this.#scheduled = false;
    for (const [queues, requests] of [
      [this.#requests, true],
      [this.#replyQueues, false],
    ] as const) {
      if (queues.size === 0) continue;
      const all = [...queues];
      queues.clear();
      for (const [subject, queue] of all) this.#publish(requests, subject, queue);
    }
  }

  #publish(requests: boolean, subject: string, queue: Queue): void {
    try {
      if (requests) {
        // The inbox goes in the envelope and as the NATS reply subject: a node whose user may
        // publish only through allow_responses can answer there (secure-a-cluster.md).
        const inbox = this.#inbox ?? "";
        this.#p.transport.publish(
          subject,
          encodeBatch(queue.entries, inbox),
          undefined,
          inbox === "" ? undefined : inbox,
        );
        this.stats.batches++;
        this.stats.entries += queue.entries.length;
      } else {
        this.#p.transport.publish(subject, encodeReplyBatch(queue.entries));
        this.stats.replyBatches++;
        this.stats.replies += queue.entries.length;
      }
    } catch (err) {
      // Refused by the client (over max_payload: one entry alone too large) or the connection
      // is gone. The asks of this batch fail their attempt now; the router retries or reports.
      this.#p.logger.warn(`batch of ${queue.entries.length} to ${subject} not sent: ${String(err)}`);
      for (const q of queue.asks) {
        const p = this.#pending.get(q);
        if (!p) continue;
        this.#pending.delete(q);
        this.#p.deadlines.cancel(p.deadline);
        p.reject(new RequestFailedError("other", subject, { cause: err }));
      }
    }
  }

  #ensureInbox(): void {
    if (this.#sub) return;
    this.#inbox = this.#p.transport.inbox?.() ?? `_INBOX.${uuidv4().replaceAll("-", "")}`;
    this.#sub = this.#p.transport.subscribe(this.#inbox, (m) => this.receive(m.data));
  }

  /** Handles one reply batch: each entry settles its own ask; a malformed one is dropped alone. */
  receive(data: Uint8Array): void {
    const batch = decodeReplyBatch(data);
    if (isError(batch)) {
      this.stats.malformed++;
      this.#p.logger.debug(`dropped a malformed reply batch: ${batch.error}`);
      return;
    }
    if (batch.malformed > 0) {
      this.stats.malformed += batch.malformed;
      this.#p.logger.debug(`dropped ${batch.malformed} malformed entries of a reply batch`);
    }
    for (const [q, reply] of batch.entries) {
      const p = this.#pending.get(q);
      if (!p) {
        this.stats.unmatched++;
        continue;
      }
      this.#pending.delete(q);
      this.#p.deadlines.cancel(p.deadline);
      p.resolve(reply);
    }
  }

  /** Asks still waiting for a reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Stops: queued entries are dropped, pending asks rejected as disconnected. */
  close(): void {
    this.#closed = true;
    this.#requests.clear();
    this.#replyQueues.clear();
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    for (const p of this.#pending.values()) {
      this.#p.deadlines.cancel(p.deadline);
      p.reject(new RequestFailedError("disconnected", p.subject));
    }
    this.#pending.clear();
  }
}
