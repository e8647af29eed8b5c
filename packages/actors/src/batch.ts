// Batching per destination: asks, tells and replies bound for one subject within one turn of the
// event loop (its synchronous work and promise jobs) travel as one NATS message (a batch), split
// below the server's max_payload. Each ask keeps its own correlation number, deadline and
// error; its retry stays the router's. A reply batch leaves as soon as the turn that produced
// it ends, so a slow handler delays only its own reply. The envelope is in batch-codec.ts and
// docs/reference/wire.md.
import {
  type Clock,
  DEADLINE_TICK_MS,
  type Deadline,
  type Deadlines,
  type Logger,
  RequestFailedError,
  type Transport,
  type TransportSubscription,
} from "@keyhold/core";
import { v4 as uuidv4 } from "uuid";
import {
  decodeReplyBatch,
  ENTRY_FRAMING_BYTES,
  type EntryList,
  EnvelopeWriter,
  readOkBatch,
} from "./batch-codec.js";
import { type Decoded, isError, type Reply } from "./wire.js";

/** Room left under max_payload for the envelope, the subject and headers. */
export const BATCH_HEADROOM_BYTES = 4096;
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

/**
 * One attempt of an ask waiting in the batcher. The attempt object is itself the pending entry
 * and carries its own deadline (no separate record, timer or closure per ask). Exactly one of
 * `onReply` and `onFail` is called, once.
 */
export abstract class BatchAttempt {
  /** Set by the batcher while pending: the correlation number, destination and deadline. */
  q = 0;
  subject = "";
  /** Monotonic ms after which the attempt times out. */
  at = 0;
  /** Set when the attempt's deadline could not join the deadline lane (see Batcher). */
  registered: Deadline | undefined = undefined;
  /** The owner's reply, checked (`{ error }` when it failed the reply checks). */
  abstract onReply(reply: Decoded<Reply>): void;
  /** An `ok` reply with result `r`, read by the fast path (batch-codec.ts readOkBatch). */
  onOk(r: unknown): void {
    this.onReply({ v: 1, k: "ok", r });
  }
  /** Timed out, cancelled, not sent, or the batcher closed. */
  abstract onFail(err: Error): void;
}

/** An attempt as a promise, for callers that await one (the router's retry loop). */
class PromiseAttempt extends BatchAttempt {
  resolve!: (r: Decoded<Reply>) => void;
  reject!: (err: Error) => void;
  onReply(reply: Decoded<Reply>): void {
    this.resolve(reply);
  }
  onFail(err: Error): void {
    this.reject(err);
  }
}

/** One ask's attempt in a batch: its reply, and a way to end it early (owner gone, ask stopped). */
export interface BatchedAttempt {
  readonly promise: Promise<Decoded<Reply>>;
  readonly cancel: (err: Error) => void;
}

type Queue = EntryList;

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

/**
 * The asker's side (requests and their replies) and the owner's side (reply batches) of batching.
 *
 * Deadlines of pending attempts: most attempts of a process have the same timeout (the attempt
 * timeout), so their deadlines grow with their correlation numbers. Such an attempt joins the
 * lane: it needs nothing but its `at`, and one sweep every DEADLINE_TICK_MS walks the pending
 * map (insertion order = correlation order) from the oldest and stops at the first lane attempt
 * not yet due. An attempt whose deadline is earlier than the lane's last (a shorter timeout)
 * takes a registration in the shared Deadlines instead. Either fires at most one tick late.
 */
export class Batcher {
  readonly #p: BatcherParams;
  readonly #schedule: (fn: () => void) => void;
  #requests = new Map<string, Queue>();
  #replyQueues = new Map<string, Queue>();
  readonly #pending = new Map<number, BatchAttempt>();
  readonly #writer = new EnvelopeWriter();
  #lane = 0;
  #laneLast = Number.NEGATIVE_INFINITY;
  #sweep: unknown;
  #inbox: string | undefined;
  #sub: TransportSubscription | undefined;
  #seq = 0;
  #scheduled = false;
  #closed = false;
  readonly #flush = () => this.flush();
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
   * Sends one encoded ask to `subject` in the next batch; `attempt` hears its checked reply, or
   * fails with RequestFailedError("timeout") after `timeoutMs` (at most one tick late).
   */
  attach(subject: string, data: Uint8Array, timeoutMs: number, attempt: BatchAttempt): void {
    if (this.#closed) return attempt.onFail(new RequestFailedError("disconnected", subject));
    this.#ensureInbox();
    const q = ++this.#seq;
    attempt.q = q;
    attempt.subject = subject;
    const at = this.#p.clock.monoNow() + timeoutMs;
    attempt.at = at;
    if (at >= this.#laneLast) {
      this.#laneLast = at;
      this.#lane++;
      attempt.registered = undefined;
      this.#armSweep();
    } else
      attempt.registered = this.#p.deadlines.add(this.#p.clock.now() + timeoutMs, () => {
        if (this.#settle(attempt)) attempt.onFail(new RequestFailedError("timeout", subject));
      });
    this.#pending.set(q, attempt);
    this.#enqueue(this.#requests, subject, q, data);
  }

  /** As `attach`, as a promise, with `cancel` to end the attempt early (a late reply is ignored). */
  start(subject: string, data: Uint8Array, timeoutMs: number): BatchedAttempt {
    const a = new PromiseAttempt();
    const promise = new Promise<Decoded<Reply>>((resolve, reject) => {
      a.resolve = resolve;
      a.reject = reject;
    });
    this.attach(subject, data, timeoutMs, a);
    return { promise, cancel: (err) => this.cancel(a, err) };
  }

  /** Ends a pending attempt now with `err`; false when it is not pending (settled already). */
  cancel(attempt: BatchAttempt, err: Error): boolean {
    if (!this.#settle(attempt)) return false;
    attempt.onFail(err);
    return true;
  }

  /** Fails every pending attempt to `subject` (its node died), each with its own `err()`. */
  cancelSubject(subject: string, err: () => Error): void {
    const gone: BatchAttempt[] = [];
    for (const a of this.#pending.values()) if (a.subject === subject) gone.push(a);
    for (const a of gone) this.cancel(a, err());
  }

  /** Fails every pending attempt that `which` selects with `err`. */
  cancelWhere(which: (a: BatchAttempt) => boolean, err: Error): void {
    const sel: BatchAttempt[] = [];
    for (const a of this.#pending.values()) if (which(a)) sel.push(a);
    for (const a of sel) this.cancel(a, err);
  }

  /** Takes a pending attempt out (and its deadline); false when it was not pending. */
  #settle(a: BatchAttempt): boolean {
    if (a.q === 0 || this.#pending.get(a.q) !== a) return false;
    this.#pending.delete(a.q);
    if (a.registered !== undefined) {
      this.#p.deadlines.cancel(a.registered);
      a.registered = undefined;
    } else if (--this.#lane === 0) this.#laneLast = Number.NEGATIVE_INFINITY;
    return true;
  }

  #armSweep(): void {
    if (this.#sweep === undefined) this.#sweep = this.#p.clock.setTimeout(this.#onSweep, DEADLINE_TICK_MS);
  }

  readonly #onSweep = (): void => {
    this.#sweep = undefined;
    const now = this.#p.clock.monoNow();
    let due: BatchAttempt[] | undefined;
    for (const a of this.#pending.values()) {
      if (a.registered !== undefined) continue; // in the shared Deadlines
      if (a.at > now) break; // lane deadlines only grow from here
      if (due === undefined) due = [];
      due.push(a);
    }
    if (due) for (const a of due) if (this.#settle(a)) a.onFail(new RequestFailedError("timeout", a.subject));
    if (this.#lane > 0 && !this.#closed) this.#armSweep();
  };

  /** Sends one encoded tell to `subject` in the next batch; nobody answers it. */
  send(subject: string, data: Uint8Array): void {
    if (this.#closed) return;
    this.#enqueue(this.#requests, subject, 0, data);
  }

  /** Queues the encoded reply to ask `q` of a batch whose replies go to `subject`. */
  reply(subject: string, q: number, data: Uint8Array): void {
    if (this.#closed) return;
    this.#enqueue(this.#replyQueues, subject, q, data);
  }

  #enqueue(queues: Map<string, Queue>, subject: string, q: number, data: Uint8Array): void {
    let queue = queues.get(subject);
    const size = data.length + ENTRY_FRAMING_BYTES;
    if (queue && (queue.bytes + size > this.limitBytes || queue.qs.length >= this.#p.maxEntries)) {
      // Full: this one goes now, the new entry starts the next.
      queues.delete(subject);
      this.#publish(queues === this.#requests, subject, queue);
      queue = undefined;
    }
    if (!queue) {
      queue = { qs: [], data: [], bytes: 0 };
      queues.set(subject, queue);
    }
    queue.qs.push(q);
    queue.data.push(data);
    queue.bytes += size;
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(this.#flush);
    }
  }

  /** Publishes everything queued. */
  flush(): void {
    this.#scheduled = false;
    if (this.#requests.size > 0) {
      const all = this.#requests;
      this.#requests = new Map();
      for (const [subject, queue] of all) this.#publish(true, subject, queue);
    }
    if (this.#replyQueues.size > 0) {
      const all = this.#replyQueues;
      this.#replyQueues = new Map();
      for (const [subject, queue] of all) this.#publish(false, subject, queue);
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
          this.#writer.write(queue, inbox),
          undefined,
          inbox === "" ? undefined : inbox,
        );
        this.stats.batches++;
        this.stats.entries += queue.qs.length;
      } else {
        this.#p.transport.publish(subject, this.#writer.write(queue, undefined));
        this.stats.replyBatches++;
        this.stats.replies += queue.qs.length;
      }
    } catch (err) {
      // Refused by the client (over max_payload: one entry alone too large) or the connection
      // is gone. The asks of this batch fail their attempt now; the router retries or reports.
      this.#p.logger.warn(`batch of ${queue.qs.length} to ${subject} not sent: ${String(err)}`);
      if (!requests) return;
      for (const q of queue.qs) {
        const a = q > 0 ? this.#pending.get(q) : undefined;
        if (a) this.cancel(a, new RequestFailedError("other", subject, { cause: err }));
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
    const oks = readOkBatch(data);
    if (oks !== undefined) {
      for (let i = 0; i < oks.qs.length; i++) {
        const a = this.#pending.get(oks.qs[i]!);
        if (!a || !this.#settle(a)) this.stats.unmatched++;
        else a.onOk(oks.rs[i]);
      }
      return;
    }
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
    const { qs, replies } = batch;
    for (let i = 0; i < qs.length; i++) {
      const a = this.#pending.get(qs[i]!);
      if (!a || !this.#settle(a)) {
        this.stats.unmatched++;
        continue;
      }
      a.onReply(replies[i]!);
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
    this.#p.clock.clearTimeout(this.#sweep);
    this.#sweep = undefined;
    const all = [...this.#pending.values()];
    for (const a of all) this.cancel(a, new RequestFailedError("disconnected", a.subject));
  }
}
