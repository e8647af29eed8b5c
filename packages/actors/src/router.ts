// The sender side: place the key, send one request to the owner (or hand it to this node's
// dispatcher), and on "moved", no responders, a lost attempt or a missed replica quorum, back
// off and try again until the deadline. Every attempt of one ask carries the same id, so a
// receiver that already handled it answers from its dedupe cache (or, after a missed quorum,
// from the entity's recent asks) instead of applying it twice.
import {
  type Clock,
  type Deadlines,
  RequestFailedError,
  type ShardNode,
  type Transport,
} from "@keyhold/core";
import { assertArgs, encodeAsk, encodeAskSeq } from "./ask-codec.js";
import { Backoff } from "./backoff.js";
import type { Batcher } from "./batch.js";
import type { LocalOutcome } from "./dispatch.js";
import {
  AbortedError,
  type ActorError,
  DeadlineExceededError,
  type ErrorTarget,
  fromWireError,
  NoLiveMemberError,
  QuorumError,
  ShardingClosedError,
} from "./errors.js";
import {
  type AskOpts,
  MessageIds,
  NodeSubjects,
  OwnerGone,
  RemoteAsk,
  type RemoteAskHost,
  type Resume,
} from "./remote-ask.js";
import { RingWatch } from "./ring-watch.js";
import { type Decoded, decodeReply, encode, isError, nodeSubject, type Reply } from "./wire.js";

export interface RouterParams {
  readonly node: ShardNode;
  readonly transport: Transport;
  readonly cluster: string;
  readonly clock: Clock;
  /** The one deadline mechanism of asks handled on this node (the local hand-over). */
  readonly deadlines: Deadlines;
  readonly askTimeoutMs: number;
  readonly attemptTimeoutMs: number;
  /** Sends asks and tells in batches per destination (batch.ts). */
  readonly batcher: Batcher;
  /** Hands a message to this node's dispatcher, or undefined for a client that hosts nothing. */
  readonly local:
    | ((
        type: string,
        key: string,
        h: string,
        args: readonly unknown[],
        done: (o: LocalOutcome) => void,
      ) => void)
    | undefined;
}

export interface RouterStats {
  asks: number;
  tells: number;
  retries: number;
  failed: number;
}

export class Router {
  readonly #p: RouterParams;
  readonly #inflight = new Set<(err: ActorError) => void>();
  #closed = false;
  /** True once close() aborted what was under way: nothing starts any more. */
  #aborted = false;
  readonly stats: RouterStats = { asks: 0, tells: 0, retries: 0, failed: 0 };
  /** First attempts under way (RemoteAsk), which are not in #inflight. */
  #firstAttempts = 0;
  /** Message ids (remote-ask.ts). */
  readonly #ids = new MessageIds();
  readonly #host: RemoteAskHost;
  readonly #subjects: NodeSubjects;
  readonly #ring: RingWatch;

  constructor(params: RouterParams) {
    this.#p = params;
    this.#subjects = new NodeSubjects(params.cluster);
    this.#ring = new RingWatch(params);
    this.#host = {
      stats: this.stats,
      retry: (a, problem, hint, quorum) =>
        this.#ask(
          a.type,
          a.key,
          a.h,
          a.args,
          { timeout: a.timeout, accepted: true },
          { id: a.id, request: a.request, deadline: a.deadline, problem, hint, from: a.owner, quorum },
        ),
      settled: () => {
        this.#firstAttempts--;
      },
    };
  }

  /** Whether `id` is a live member in this node's view (a "moved" hint is followed only then). */
  #isMember(id: string): boolean {
    return id === this.#p.node.id || this.#p.node.members().includes(id);
  }

  /** New asks and tells fail with ShardingClosedError from now on; asks under way go on. */
  stopAccepting(): void {
    this.#closed = true;
  }

  /** Resolves when no ask is under way, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    const { clock } = this.#p;
    const deadline = clock.now() + timeoutMs;
    while (this.#inflight.size + this.#firstAttempts > 0 && clock.now() < deadline) {
      await new Promise<void>((r) => clock.setTimeout(r, 5));
    }
  }

  /** Rejects every ask still under way with ShardingClosedError. */
  close(): void {
    this.#closed = true;
    this.#aborted = true;
    for (const abort of this.#inflight) abort(new ShardingClosedError());
    this.#inflight.clear();
    this.#p.batcher.cancelWhere((a) => a instanceof RemoteAsk, new ShardingClosedError());
  }

  ask(type: string, key: string, h: string, args: readonly unknown[], opts: AskOpts = {}): Promise<unknown> {
    // The common case, a remote owner and neither a signal nor trace headers: the first attempt
    // is one object (remote-ask.ts); what it cannot settle continues in #ask below.
    if (this.#closed || opts.signal !== undefined || opts.headers !== undefined)
      return this.#ask(type, key, h, args, opts);
    const { node, clock } = this.#p;
    const owner = node.place(key);
    if (owner === undefined || (owner === node.id && this.#p.local))
      return this.#ask(type, key, h, args, opts);
    const ids = this.#ids;
    const seq = ids.nextSeq();
    let request: Uint8Array;
    try {
      assertArgs(args, type, h);
      request = encodeAskSeq(ids.prefix, seq, type, key, h, args, 0);
    } catch (err) {
      return Promise.reject(err);
    }
    this.stats.asks++;
    this.#ring.ensure();
    const timeout = opts.timeout ?? this.#p.askTimeoutMs;
    const a = new RemoteAsk(
      this.#host,
      type,
      key,
      h,
      args,
      timeout,
      clock.now() + timeout,
      ids,
      seq,
      request,
      owner,
    );
    this.#firstAttempts++;
    const attemptMs = Math.max(1, Math.min(this.#p.attemptTimeoutMs, timeout));
    this.#p.batcher.attach(this.#subjects.of(owner), request, attemptMs, a);
    return a.promise;
  }

  /** The general path: every attempt, retries, local hand-overs, signals, trace headers. */
  async #ask(
    type: string,
    key: string,
    h: string,
    args: readonly unknown[],
    opts: AskOpts,
    resume?: Resume,
  ): Promise<unknown> {
    if (this.#closed && !(opts.accepted && !this.#aborted)) throw new ShardingClosedError();
    const target: ErrorTarget = { type, key, handler: h };
    if (resume === undefined) {
      assertArgs(args, type, h);
      this.stats.asks++;
    }
    const { node, clock } = this.#p;
    const timeout = opts.timeout ?? this.#p.askTimeoutMs;
    const deadline = resume?.deadline ?? clock.now() + timeout;
    const signal = opts.signal;
    if (signal?.aborted) throw new AbortedError(signal.reason);

    // Why the ask was stopped (close, abort), made a promise only where it is raced (the
    // local hand-over and the sleeps); a batched attempt under way is cancelled directly.
    let stopReason: ActorError | undefined;
    let rejectStopped: ((err: ActorError) => void) | undefined;
    let stoppedPromise: Promise<never> | undefined;
    let cancelAttempt: ((err: Error) => void) | undefined;
    const stopped = (): Promise<never> => {
      if (!stoppedPromise) {
        stoppedPromise =
          stopReason !== undefined
            ? Promise.reject(stopReason)
            : new Promise<never>((_, reject) => {
                rejectStopped = reject;
              });
        stoppedPromise.catch(() => {});
      }
      return stoppedPromise;
    };
    const stop = (err: ActorError) => {
      if (stopReason !== undefined) return;
      stopReason = err;
      rejectStopped?.(err);
      cancelAttempt?.(err);
    };
    const onAbort = () => stop(new AbortedError(signal?.reason));
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#inflight.add(stop);

    const id = resume?.id ?? this.#ids.next();
    let request: Uint8Array | undefined = resume?.request;
    const backoff = new Backoff(2, 100);
    let problem = resume?.problem ?? "no live member";
    // The write of the last remote attempt missed its replica quorum (a replica that crashed or
    // left counts until the owner's view drops it, up to ttlMs: replication.ts). QuorumError is
    // retryable, so it is retried here with the same id (the owner answers a retry from the
    // entity's recent asks once a write covers it) until the deadline, and thrown only then. Not
    // a local one: a local ask has no id, and its handler would run again.
    let quorum = resume?.quorum;
    // A resumed ask had its first attempt (remote-ask.ts): it starts at the backoff, unless
    // that attempt was answered "moved" with the new owner's name (below).
    // The nodes asked since the last backoff: a hint naming one of them is not followed.
    const asked = new Set<string>();
    let movedFrom = resume?.from;
    if (movedFrom !== undefined) asked.add(movedFrom);
    let hint =
      resume?.hint !== undefined && !asked.has(resume.hint) && this.#isMember(resume.hint)
        ? resume.hint
        : undefined;
    let skip = resume !== undefined && hint === undefined;
    try {
      for (;;) {
        const placed = skip ? undefined : node.place(key);
        skip = false;
        // A "moved" reply names the owner in the replier's view. While ours still names the
        // node that said "moved" (our ring has not changed yet), the ask goes to the named one
        // at once: it checks lease and ownership itself (buffering while it takes the partition
        // over) and the same id keeps it deduplicated. Otherwise our own view decides.
        const owner = hint !== undefined && (placed === undefined || placed === movedFrom) ? hint : placed;
        hint = undefined;
        if (owner !== undefined) asked.add(owner);
        if (owner !== undefined && owner === node.id && this.#p.local) {
          quorum = undefined;
          const { deadlines } = this.#p;
          let expiry: ReturnType<Deadlines["add"]> | undefined;
          const out = await Promise.race([
            new Promise<LocalOutcome>((r) => this.#p.local!(type, key, h, args, r)),
            new Promise<never>((_, reject) => {
              expiry = deadlines.add(Math.max(deadline, clock.now() + 1), () =>
                reject(new DeadlineExceededError(target, timeout, "the local handler is still running")),
              );
            }),
            stopped(),
          ]).finally(() => {
            if (expiry) deadlines.cancel(expiry);
          });
          if ("moved" in out) problem = "partition moving";
          else if (out.ok) return out.result;
          else throw out.error;
        } else if (owner !== undefined) {
          request ??= encodeAsk(id, type, key, h, args, 0);
          const left = deadline - clock.now();
          // At the deadline with no attempt left: a missed quorum is still what the caller gets.
          if (left <= 0) break;
          quorum = undefined;
          let reply: Decoded<Reply> | undefined;
          const subject = nodeSubject(this.#p.cluster, owner);
          const attemptMs = Math.max(1, Math.min(this.#p.attemptTimeoutMs, left));
          if (stopReason !== undefined) throw stopReason;
          try {
            if (opts.headers === undefined) {
              // Batched (batch.ts): a stop cancels the attempt itself, and the owner's death
              // every attempt to it (ring-watch.ts), with no race of promises per ask.
              this.#ring.ensure();
              const attempt = this.#p.batcher.start(subject, request, attemptMs);
              cancelAttempt = attempt.cancel;
              try {
                reply = await attempt.promise;
              } finally {
                cancelAttempt = undefined;
              }
            } else {
              // An ask with trace headers travels alone: headers belong to a NATS message.
              const gone = this.#ring.whenGone(owner);
              try {
                const data = await Promise.race([
                  this.#p.transport.request(subject, request, { timeout: attemptMs, headers: opts.headers }),
                  gone.promise,
                  stopped(),
                ]);
                reply = decodeReply(data);
              } finally {
                gone.dispose();
              }
            }
          } catch (err) {
            if (err instanceof OwnerGone) problem = `${owner} died`;
            else if (!(err instanceof RequestFailedError)) throw err;
            else problem = `${err.reason} from ${owner}`;
          }
          if (reply !== undefined) {
            if (isError(reply)) problem = `malformed reply from ${owner}`;
            else if (reply.k === "ok") return reply.r;
            else if (reply.k === "err") {
              const err = fromWireError(reply.e, target);
              if (!(err instanceof QuorumError)) throw err;
              [quorum, problem] = [err, err.message];
            } else if (reply.k === "moved") {
              problem = `${owner} says it moved to ${reply.owner ?? "nobody"}`;
              // Only to a live member in our view (a replier that has not yet seen a crash may
              // name the dead node, which would cost a whole attempt timeout), and not asked
              // since the last backoff: two nodes whose views disagree would otherwise send the
              // ask back and forth until their views agree.
              if (reply.owner && !asked.has(reply.owner) && this.#isMember(reply.owner)) {
                hint = reply.owner;
                movedFrom = owner;
              }
            } else problem = `unexpected reply from ${owner}`;
          }
        }
        const left = deadline - clock.now();
        if (left <= 0) break;
        this.stats.retries++;
        if (hint !== undefined) continue;
        asked.clear();
        await Promise.race([this.#ring.sleep(backoff.next(left)), stopped()]);
      }
      if (quorum !== undefined) throw quorum;
      throw problem === "no live member"
        ? new NoLiveMemberError(target, timeout)
        : new DeadlineExceededError(target, timeout, problem);
    } catch (err) {
      this.stats.failed++;
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#inflight.delete(stop);
    }
  }

  /** Sends without waiting for the result: at most once, errors are not reported. */
  tell(type: string, key: string, h: string, args: readonly unknown[]): void {
    if (this.#closed) throw new ShardingClosedError();
    assertArgs(args, type, h);
    this.stats.tells++;
    const { node } = this.#p;
    const owner = node.place(key);
    if (owner === undefined) return;
    if (owner === node.id && this.#p.local) {
      this.#p.local(type, key, h, args, (o) => {
        if ("moved" in o) this.forward(type, key, h, args, this.#ids.next(), 1);
      });
      return;
    }
    this.#p.batcher.send(
      nodeSubject(this.#p.cluster, owner),
      encode({ v: 1, k: "tell", id: this.#ids.next(), t: type, key, h, a: args, hop: 0 }),
    );
  }

  /** Forwards a tell this node cannot handle to the owner it sees. False when there is none. */
  forward(type: string, key: string, h: string, args: readonly unknown[], id: string, hop: number): boolean {
    const owner = this.#p.node.place(key);
    if (owner === undefined || owner === this.#p.node.id) return false;
    this.#p.batcher.send(
      nodeSubject(this.#p.cluster, owner),
      encode({ v: 1, k: "tell", id, t: type, key, h, a: args, hop }),
    );
    return true;
  }
}
