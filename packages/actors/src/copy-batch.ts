// Batching of replica copies and their acknowledgements, per replica: the `rep` messages a
// primary sends to one replica within one turn of the event loop (the writes of every entity
// its last batch of asks touched, and the refill pages of that turn) leave as one NATS request,
// split below the server's max_payload, and come back as one reply holding each entry's answer.
// Each copy keeps its own partition, fencing token and answer (`repok` or `stale`), which the
// replicator reads exactly as if it had travelled alone (replication.ts send). The lease is
// checked again right before a batch leaves: publishing copies is an act as owner.
import type { Transport } from "@keyhold/core";
import {
  type CopyBatchMessage,
  decodeCopyAcks,
  encodeCopyAcks,
  encodeCopyBatch,
  MAX_COPY_ENTRIES,
} from "./copy-wire.js";
import type { Replicator } from "./replication.js";
import { decodeRequest, encode, isError, type ReplicateMessage } from "./wire.js";

/** Room left under max_payload for the envelope, the subject and headers. */
const HEADROOM_BYTES = 4096;
/** What msgpack adds per entry (a bin header) at most. */
const ENTRY_OVERHEAD = 8;
/** max_payload when the transport does not say (the NATS server's default). */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** A batch was not sent because this node's lease was no longer valid when it was due to leave. */
export class CopiesNotSent extends Error {
  constructor() {
    super("copies not sent: the lease is not valid");
    this.name = "CopiesNotSent";
  }
}

export interface CopyBatchStats {
  /** Requests sent to replicas (a batch, or a copy alone). */
  requests: number;
  /** Copies they carried. */
  copies: number;
}

export interface CopyBatcherParams {
  readonly transport: Transport;
  readonly timeoutMs: number;
  /** Most copies in one request (batchMaxEntries). */
  readonly maxEntries: number;
  /** The lease check before copies leave (ShardNode.leaseValid). */
  readonly leaseValid: () => boolean;
  /** Runs `fn` once the current turn's synchronous work and promise jobs are done. */
  readonly schedule?: (fn: () => void) => void;
}

interface Entry {
  readonly msg: Uint8Array;
  readonly resolve: (reply: Uint8Array) => void;
  readonly reject: (err: unknown) => void;
}

interface Queue {
  entries: Entry[];
  bytes: number;
}

export class CopyBatcher {
  readonly #p: CopyBatcherParams;
  readonly #schedule: (fn: () => void) => void;
  readonly #queues = new Map<string, Queue>();
  #scheduled = false;
  readonly stats: CopyBatchStats = { requests: 0, copies: 0 };

  constructor(params: CopyBatcherParams) {
    this.#p = params;
    this.#schedule = params.schedule ?? queueMicrotask;
  }

  #limit(): number {
    return (this.#p.transport.maxPayload?.() ?? DEFAULT_MAX_PAYLOAD) - HEADROOM_BYTES;
  }

  /** Sends one encoded `rep` message to `subject` with the copies of this turn; resolves with its reply. */
  request(subject: string, msg: Uint8Array): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => this.enqueue(subject, msg, resolve, reject));
  }

  /** request() with its reply, or why it failed, by callback (no promise per copy). */
  enqueue(
    subject: string,
    msg: Uint8Array,
    resolve: (reply: Uint8Array) => void,
    reject: (err: unknown) => void,
  ): void {
    const size = msg.length + ENTRY_OVERHEAD;
    const limit = this.#limit();
    let q = this.#queues.get(subject);
    if (q && (q.entries.length >= Math.min(this.#p.maxEntries, MAX_COPY_ENTRIES) || q.bytes + size > limit)) {
      this.#queues.delete(subject);
      this.#send(subject, q.entries);
      q = undefined;
    }
    if (!q) {
      q = { entries: [], bytes: 0 };
      this.#queues.set(subject, q);
    }
    q.entries.push({ msg, resolve, reject });
    q.bytes += size;
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    const queues = [...this.#queues];
    this.#queues.clear();
    for (const [subject, q] of queues) this.#send(subject, q.entries);
  }

  #send(subject: string, entries: readonly Entry[]): void {
    if (!this.#p.leaseValid()) {
      const err = new CopiesNotSent();
      for (const e of entries) e.reject(err);
      return;
    }
    this.stats.requests++;
    this.stats.copies += entries.length;
    const timeout = this.#p.timeoutMs;
    if (entries.length === 1) {
      // A copy alone travels as a plain `rep`: no envelope to build or open.
      const e = entries[0]!;
      this.#p.transport.request(subject, e.msg, { timeout }).then(e.resolve, e.reject);
      return;
    }
    this.#p.transport.request(subject, encodeCopyBatch(entries.map((e) => e.msg)), { timeout }).then(
      (data) => {
        const replies = decodeCopyAcks(data, entries.length);
        // A malformed answer acknowledges nothing: each copy reads an empty reply ("bad reply").
        entries.forEach((e, i) => {
          e.resolve(replies?.[i] ?? new Uint8Array(0));
        });
      },
      (err: unknown) => {
        for (const e of entries) e.reject(err);
      },
    );
  }
}

/** The `repok` of a copy alone (a write's), encoded once: nothing reads or changes it after. */
export const REPOK_ONE: Uint8Array = encode({ v: 1, k: "repok", n: 1 });

/**
 * Whether `data` is REPOK_ONE byte for byte: the primary reads that answer (nearly every copy's)
 * without unpacking it; anything else is decoded and judged as before.
 */
export function isRepokOne(data: Uint8Array): boolean {
  if (data.length !== REPOK_ONE.length) return false;
  for (let i = 0; i < data.length; i++) if (data[i] !== REPOK_ONE[i]) return false;
  return true;
}

/** A replica's answer to one `rep` message: `repok`, or `stale` when any copy was refused. */
export function answerCopy(replicator: Replicator, msg: ReplicateMessage): Uint8Array {
  // A decoded message carries its copies with their records still packed (copy version 2).
  const copies = msg.copies;
  const v = copies
    ? replicator.receiveCopies(msg.p, copies, msg.from, msg.ep ?? 0)
    : replicator.receive(msg.p, msg.recs, msg.from, msg.ep ?? 0);
  const n = copies ? copies.length : msg.recs.length;
  if (v.refused > 0)
    return encode({ v: 1, k: "stale", n: v.refused, primary: v.primary, ...(v.ep ? { ep: v.ep } : {}) });
  return n === 1 ? REPOK_ONE : encode({ v: 1, k: "repok", n });
}

/**
 * A replica's answers to a copy batch, in its order: each entry judged alone, as if it had come
 * by itself; a malformed entry (or one that is no `rep`) is answered with an empty reply, which
 * its sender reads as not acknowledged (`malformed` hears of each). Returns the encoded `repacks`.
 */
export function serveCopyBatch(
  replicator: Replicator,
  batch: CopyBatchMessage,
  malformed: () => void,
): Uint8Array {
  const replies = batch.m.map((data) => {
    const msg = decodeRequest(data);
    if (isError(msg) || msg.k !== "rep") {
      malformed();
      return new Uint8Array(0);
    }
    return answerCopy(replicator, msg);
  });
  return encodeCopyAcks(replies);
}
