// The sender side: place the key, send one request to the owner (or hand it to this node's
// dispatcher), and on "moved", no responders or a lost attempt, back off and try again until
// the deadline.
// Every attempt of one ask carries the same id, so a receiver that already handled it answers
// from its dedupe cache instead of applying it twice.
import {
  type Clock,
  type Deadlines,
  type MessageHeaders,
  RequestFailedError,
  type ShardNode,
  type Transport,
} from "@keyhold/core";
import { v4 as uuidv4 } from "uuid";
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
  ShardingClosedError,
} from "./errors.js";
import { assertSerializable } from "./serializable.js";
import { decodeReply, encode, isError, nodeSubject } from "./wire.js";

class OwnerGone extends Error {}

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
  // Per target, the attempts waiting on it (each rejected when the target dies, so no attempt
  // waits out its timeout for a dead owner); each removes itself when it settles, so a
  // long-lived client keeps nothing per finished ask.
  readonly #watch = new Map<string, Set<(err: OwnerGone) => void>>();
  #watching: Promise<void> | undefined;
  readonly #sleepers = new Set<() => void>();
  #closed = false;
  /** True once close() aborted what was under way: nothing starts any more. */
  #aborted = false;
  readonly stats: RouterStats = { asks: 0, tells: 0, retries: 0, failed: 0 };

  constructor(params: RouterParams) {
    this.#p = params;
  }

  /**
   * Rejects with OwnerGone when `target` drops out of the ring without a graceful leave (its
   * lease expired: it crashed or was cut off). It will not answer, so waiting out the attempt
   * timeout would only delay the retry at the new owner.
   */
  #whenGone(target: string): { promise: Promise<never>; dispose: () => void } {
    let reject!: (err: OwnerGone) => void;
    const promise = new Promise<never>((_, r) => {
      reject = r;
    });
    promise.catch(() => {});
    return { promise, dispose: this.#watchTarget(target, reject) };
  }

  /** Calls `onGone` when `target` drops out as #whenGone says; returns the undo. */
  #watchTarget(target: string, onGone: (err: OwnerGone) => void): () => void {
    let set = this.#watch.get(target);
    if (!set) {
      set = new Set();
      this.#watch.set(target, set);
    }
    set.add(onGone);
    this.#ensureWatching();
    const waiting = set;
    return () => {
      waiting.delete(onGone);
      if (waiting.size === 0 && this.#watch.get(target) === waiting) this.#watch.delete(target);
    };
  }

  /**
   * Waits `ms` before the next attempt, or less: a change of the ring (the owner we wait for
   * appeared, or the dead one was dropped) ends every backoff at once.
   */
  #sleep(ms: number): Promise<void> {
    this.#ensureWatching();
    const { clock } = this.#p;
    return new Promise<void>((resolve) => {
      const wake = () => {
        clock.clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = clock.setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  #ensureWatching(): void {
    if (this.#watching) return;
    this.#watching = (async () => {
      for await (const e of this.#p.node.events()) {
        if (e.type === "members") for (const wake of [...this.#sleepers]) wake();
        if (e.type !== "members" || e.left.length === 0) continue;
        const departed = new Set(this.#p.node.departed());
        for (const id of e.left) {
          if (departed.has(id)) continue; // a graceful leaver still answers what it took
          const waiting = this.#watch.get(id);
          if (waiting) {
            this.#watch.delete(id);
            for (const reject of waiting) reject(new OwnerGone());
          }
        }
      }
    })();
  }

  /** New asks and tells fail with ShardingClosedError from now on; asks under way go on. */
  stopAccepting(): void {
    this.#closed = true;
  }

  /** Resolves when no ask is under way, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    const { clock } = this.#p;
    const deadline = clock.now() + timeoutMs;
    while (this.#inflight.size > 0 && clock.now() < deadline) {
      await new Promise<void>((r) => clock.setTimeout(r, 5));
    }
  }

  /** Rejects every ask still under way with ShardingClosedError. */
  close(): void {
    this.#closed = true;
    this.#aborted = true;
    for (const abort of this.#inflight) abort(new ShardingClosedError());
    this.#inflight.clear();
  }

  async ask(
    type: string,
    key: string,
    h: string,
    args: readonly unknown[],
    opts: {
      timeout?: number | undefined;
      signal?: AbortSignal | undefined;
      headers?: MessageHeaders | undefined;
      /**
       * An ask this node accepted before it began closing (a local ask whose entity moved
       * away meanwhile): it goes on after stopAccepting(), until close() aborts it.
       */
      accepted?: boolean;
    } = {},
  ): Promise<unknown> {
    if (this.#closed && !(opts.accepted && !this.#aborted)) throw new ShardingClosedError();
    const target: ErrorTarget = { type, key, handler: h };
    assertSerializable(args, `the arguments of ${type}.${h}`, "args");
    this.stats.asks++;
    const { node, clock } = this.#p;
    const timeout = opts.timeout ?? this.#p.askTimeoutMs;
    const deadline = clock.now() + timeout;
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

    const id = uuidv4();
    let request: Uint8Array | undefined;
    const backoff = new Backoff(2, 100);
    let problem = "no live member";
    try {
      for (;;) {
        const owner = node.place(key);
        if (owner !== undefined && owner === node.id && this.#p.local) {
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
          request ??= encode({ v: 1, k: "ask", id, t: type, key, h, a: args, hop: 0 });
          const left = deadline - clock.now();
          if (left <= 0) break;
          let data: Uint8Array | undefined;
          const subject = nodeSubject(this.#p.cluster, owner);
          const attemptMs = Math.max(1, Math.min(this.#p.attemptTimeoutMs, left));
          if (stopReason !== undefined) throw stopReason;
          try {
            if (opts.headers === undefined) {
              // Batched (batch.ts): the owner's death or a stop cancels the attempt itself,
              // with no race of promises per ask.
              const attempt = this.#p.batcher.start(subject, request, attemptMs);
              cancelAttempt = attempt.cancel;
              const unwatch = this.#watchTarget(owner, () => attempt.cancel(new OwnerGone()));
              try {
                data = await attempt.promise;
              } finally {
                unwatch();
                cancelAttempt = undefined;
              }
            } else {
              // An ask with trace headers travels alone: headers belong to a NATS message.
              const gone = this.#whenGone(owner);
              try {
                data = await Promise.race([
                  this.#p.transport.request(subject, request, { timeout: attemptMs, headers: opts.headers }),
                  gone.promise,
                  stopped(),
                ]);
              } finally {
                gone.dispose();
              }
            }
          } catch (err) {
            if (err instanceof OwnerGone) problem = `${owner} died`;
            else if (!(err instanceof RequestFailedError)) throw err;
            else problem = `${err.reason} from ${owner}`;
          }
          if (data !== undefined) {
            const reply = decodeReply(data);
            if (isError(reply)) problem = `malformed reply from ${owner}`;
            else if (reply.k === "ok") return reply.r;
            else if (reply.k === "err") throw fromWireError(reply.e, target);
            else if (reply.k === "moved") problem = `${owner} says it moved to ${reply.owner ?? "nobody"}`;
            else problem = `unexpected reply from ${owner}`;
          }
        }
        const left = deadline - clock.now();
        if (left <= 0) break;
        this.stats.retries++;
        await Promise.race([this.#sleep(backoff.next(left)), stopped()]);
      }
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
    assertSerializable(args, `the arguments of ${type}.${h}`, "args");
    this.stats.tells++;
    const { node } = this.#p;
    const owner = node.place(key);
    if (owner === undefined) return;
    if (owner === node.id && this.#p.local) {
      this.#p.local(type, key, h, args, (o) => {
        if ("moved" in o) this.forward(type, key, h, args, uuidv4(), 1);
      });
      return;
    }
    this.#p.batcher.send(
      nodeSubject(this.#p.cluster, owner),
      encode({ v: 1, k: "tell", id: uuidv4(), t: type, key, h, a: args, hop: 0 }),
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
