// The first attempt of a remote ask without a signal or trace headers: the common case, kept to
// one object. The ask is itself the batcher's pending entry (batch.ts BatchAttempt) with its
// deadline in the batcher's lane, so it needs no async function, no race of promises, no
// per-ask timer and no registration to hear of its owner's death (the router cancels every
// attempt to a dead node through the batcher). What the first attempt cannot settle (no reply in
// time, "moved", the owner died, a malformed reply) goes on in the router's retry loop with the
// same id and the same encoded request, so the owner's dedupe cache still applies it once.
import { randomBytes } from "node:crypto";
import { type MessageHeaders, RequestFailedError } from "@keyhold/core";
import { BatchAttempt } from "./batch.js";
import { type ErrorTarget, fromWireError, QuorumError } from "./errors.js";
import { type Decoded, isError, nodeSubject, type Reply } from "./wire.js";

export interface AskOpts {
  timeout?: number | undefined;
  signal?: AbortSignal | undefined;
  headers?: MessageHeaders | undefined;
  /**
   * An ask this node accepted before it began closing (a local ask whose entity moved away
   * meanwhile): it goes on after stopAccepting(), until close() aborts it.
   */
  accepted?: boolean;
}

/** Where an ask resumes after a first attempt that did not settle it (remote-ask.ts). */
export interface Resume {
  readonly id: string;
  readonly request: Uint8Array;
  readonly deadline: number;
  readonly problem: string;
  /** The owner a "moved" reply named, tried at once instead of after a backoff. */
  readonly hint?: string | undefined;
  /** The node that answered "moved" (the hint is followed only away from it). */
  readonly from?: string | undefined;
  /** The first attempt's write missed its replica quorum (retried like "moved", see router.ts). */
  readonly quorum?: QuorumError | undefined;
}

/**
 * Message ids: a random prefix per router (72 bits) and a counter. Unique like a uuid for the
 * dedupe cache, at a fraction of the cost and bytes.
 */
export class MessageIds {
  /** ASCII (base64url): ask-codec.ts encodeAskSeq writes it and the digits into the ask. */
  readonly prefix = randomBytes(9).toString("base64url");
  #seq = 0;

  next(): string {
    return this.idOf(this.nextSeq());
  }

  /** The next id as its sequence number (`idOf` makes the string when it is needed). */
  nextSeq(): number {
    return ++this.#seq;
  }

  idOf(seq: number): string {
    return this.prefix + seq.toString(36);
  }
}

/** Node subjects, built once per node (wire.ts nodeSubject). */
export class NodeSubjects {
  readonly #cluster: string;
  readonly #bySubject = new Map<string, string>();

  constructor(cluster: string) {
    this.#cluster = cluster;
  }

  of(nodeId: string): string {
    let s = this.#bySubject.get(nodeId);
    if (s === undefined) {
      if (this.#bySubject.size >= 4096) this.#bySubject.clear();
      s = nodeSubject(this.#cluster, nodeId);
      this.#bySubject.set(nodeId, s);
    }
    return s;
  }
}

/** An attempt's owner dropped out of the ring without a graceful leave. */
export class OwnerGone extends Error {}

/** Where an ask continues after its first attempt, and what it reports to. */
export interface RemoteAskHost {
  readonly stats: { failed: number };
  /** Retries the ask from its backoff (router.ts), resolving with its outcome. */
  retry(ask: RemoteAsk, problem: string, hint?: string, quorum?: QuorumError): Promise<unknown>;
  /** The ask settled (its first attempt, or the retries it handed on). */
  settled(): void;
}

export class RemoteAsk extends BatchAttempt {
  // (`deadline` is the ask's; the attempt's is the batcher's `at`.)
  readonly promise: Promise<unknown>;
  #resolve!: (v: unknown) => void;
  #reject!: (err: unknown) => void;
  /** The ask under construction, for the one executor all asks share (no closure per ask). */
  static #making: RemoteAsk | undefined;
  static readonly #executor = (resolve: (v: unknown) => void, reject: (err: unknown) => void): void => {
    const a = RemoteAsk.#making!;
    a.#resolve = resolve;
    a.#reject = reject;
  };

  constructor(
    readonly host: RemoteAskHost,
    readonly type: string,
    readonly key: string,
    readonly h: string,
    readonly args: readonly unknown[],
    /** The ask's timeout, and its deadline on the router's clock (wall ms). */
    readonly timeout: number,
    readonly deadline: number,
    readonly ids: MessageIds,
    /** The ask's id as its sequence number (MessageIds.idOf). */
    readonly seq: number,
    readonly request: Uint8Array,
    readonly owner: string,
  ) {
    super();
    RemoteAsk.#making = this;
    this.promise = new Promise(RemoteAsk.#executor);
    RemoteAsk.#making = undefined;
  }

  /** The ask's id, built only for the retry loop (the request carries it already). */
  get id(): string {
    return this.ids.idOf(this.seq);
  }

  get target(): ErrorTarget {
    return { type: this.type, key: this.key, handler: this.h };
  }

  onReply(reply: Decoded<Reply>): void {
    if (isError(reply)) return this.#retry(`malformed reply from ${this.owner}`);
    switch (reply.k) {
      case "ok":
        this.host.settled();
        return this.#resolve(reply.r);
      case "err": {
        const err = fromWireError(reply.e, this.target);
        // A missed replica quorum is retried within the deadline (router.ts).
        if (err instanceof QuorumError) return this.#retry(err.message, undefined, err);
        return this.#fail(err);
      }
      case "moved":
        return this.#retry(
          `${this.owner} says it moved to ${reply.owner ?? "nobody"}`,
          reply.owner ?? undefined,
        );
      default:
        return this.#retry(`unexpected reply from ${this.owner}`);
    }
  }

  /** The common reply, read by the batch fast path (batch-codec.ts readOkBatch). */
  override onOk(r: unknown): void {
    this.host.settled();
    this.#resolve(r);
  }

  onFail(err: Error): void {
    if (err instanceof OwnerGone) this.#retry(`${this.owner} died`);
    else if (err instanceof RequestFailedError) this.#retry(`${err.reason} from ${this.owner}`);
    else this.#fail(err); // ShardingClosedError from close(), or anything unexpected
  }

  #fail(err: unknown): void {
    this.host.stats.failed++;
    this.host.settled();
    this.#reject(err);
  }

  #retry(problem: string, hint?: string, quorum?: QuorumError): void {
    const next = this.host.retry(this, problem, hint, quorum);
    this.host.settled();
    this.#resolve(next);
  }
}
