// The node's background work on one p-queue: hand-off pulls and reminder recovery (they keep a
// partition's messages waiting), then replica refills, then maintenance (pruning of outboxes,
// orphaned and dormant copies, the idle sweep). Bounded concurrency, paused while the node is
// fenced, drained by close(). The per-message hot path (mailbox.ts) never comes through here:
// p-queue's per-task bookkeeping costs about two thirds of a local ask.
import type { Clock, Logger, ShardNode } from "@keyhold/core";
import PQueue from "p-queue";

/** Priorities of background work, highest first (p-queue runs a higher number sooner). */
export const BACKGROUND_PRIORITY = { handoff: 3, refill: 2, maintenance: 1 } as const;

export type BackgroundKind = keyof typeof BACKGROUND_PRIORITY;

/**
 * The queue as `Sharding.stats().background` shows it: flat counters, so that the admin report
 * carries them as they are (a group of numbers).
 */
export interface BackgroundStats {
  /** Most tasks running at once (backgroundConcurrency). */
  readonly concurrency: number;
  /** 1 while paused because the node is fenced, else 0. */
  readonly paused: number;
  /** Tasks waiting to start, and running. */
  readonly size: number;
  readonly pending: number;
  /** Waiting tasks per priority. */
  readonly queuedHandoff: number;
  readonly queuedRefill: number;
  readonly queuedMaintenance: number;
  /** Running tasks per priority. */
  readonly runningHandoff: number;
  readonly runningRefill: number;
  readonly runningMaintenance: number;
  /** Tasks ever added per priority. */
  readonly addedHandoff: number;
  readonly addedRefill: number;
  readonly addedMaintenance: number;
  /** Tasks dropped before they started: their partition was lost, the node fenced or closed. */
  readonly dropped: number;
  /** Tasks that threw. */
  readonly failed: number;
}

type PerKind = Record<BackgroundKind, number>;

export interface BackgroundTask<T> {
  /** What `add` resolves with when the task is dropped before it started. */
  readonly dropped: T;
  /** Drops the task if this settles before the task starts (its partition was released). */
  readonly until?: Promise<unknown> | undefined;
  /**
   * Work for a partition this node serves or takes over: dropped if the node fences before it
   * starts (a fenced node releases every partition), so a release never waits behind it.
   */
  readonly partition?: boolean | undefined;
}

const DROP = Symbol("dropped");

export class Background {
  readonly #queue: PQueue;
  readonly #logger: Logger;
  readonly #nodeId: string;
  readonly #running: PerKind = zero();
  readonly #added: PerKind = zero();
  #dropped = 0;
  #failed = 0;
  #fenced = false;
  #closed = false;
  // Waiting tasks that a fence (partition work) or the close deadline (all of them) drops.
  readonly #waiting = new Set<AbortController>();
  readonly #partitionWork = new Set<AbortController>();

  readonly #isFenced: () => boolean;

  constructor(params: {
    readonly concurrency: number;
    readonly logger: Logger;
    readonly nodeId: string;
    /** The node's own fenced flag, read when partition work is added (ShardNode.fenced). */
    readonly fenced?: (() => boolean) | undefined;
  }) {
    this.#queue = new PQueue({ concurrency: params.concurrency });
    this.#logger = params.logger;
    this.#nodeId = params.nodeId;
    this.#isFenced = params.fenced ?? (() => false);
  }

  /**
   * Runs `fn` when a slot is free and no higher-priority task waits; resolves with its result,
   * or with `task.dropped` when it was dropped before it started. A running task is never
   * interrupted: its caller always gets its own outcome.
   */
  add<T>(kind: BackgroundKind, fn: () => T | Promise<T>, task: BackgroundTask<T>): Promise<T> {
    this.#added[kind]++;
    // A fenced node serves no partition: work for one is moot. The node's own flag is read,
    // not the last event seen, so work added right after an unfence is never dropped.
    if (this.#closed || (task.partition && this.#isFenced())) {
      this.#dropped++;
      return Promise.resolve(task.dropped);
    }
    const ac = new AbortController();
    this.#waiting.add(ac);
    if (task.partition) this.#partitionWork.add(ac);
    const forget = () => {
      this.#waiting.delete(ac);
      this.#partitionWork.delete(ac);
    };
    // Only while waiting: p-queue counts a task whose signal aborts as done at once, so
    // aborting a running one would let another start beside it, past the bound.
    const drop = () => {
      if (this.#waiting.has(ac)) ac.abort(DROP);
    };
    void task.until?.then(drop, drop);
    let started: Promise<T> | undefined;
    const run = (): Promise<T> => {
      forget();
      this.#running[kind]++;
      started = (async () => fn())().finally(() => {
        this.#running[kind]--;
      });
      return started;
    };
    return this.#queue.add(run, { priority: BACKGROUND_PRIORITY[kind], signal: ac.signal }).then(
      (v) => v,
      (err: unknown) => {
        // Started: the task's own outcome (a running task's signal is never aborted, see above).
        if (started) return started.catch((e: unknown) => this.#fail(e));
        forget();
        if (err === DROP) {
          this.#dropped++;
          return task.dropped;
        }
        return this.#fail(err);
      },
    );
  }

  /** Fire and forget: `fn` runs like `add`, a failure is logged. */
  spawn(kind: BackgroundKind, fn: () => unknown, partition = false): void {
    this.add(kind, fn, { dropped: undefined, partition }).catch((err: unknown) => {
      this.#logger.warn(`node ${this.#nodeId}: background ${kind} task failed: ${String(err)}`);
    });
  }

  #fail(err: unknown): never {
    this.#failed++;
    throw err;
  }

  /** Pauses the queue while the node is fenced and drops the partition work still waiting. */
  fence(fenced: boolean): void {
    if (fenced === this.#fenced) return;
    this.#fenced = fenced;
    if (fenced) {
      this.#queue.pause();
      for (const ac of [...this.#partitionWork]) ac.abort(DROP);
    } else this.#queue.start();
  }

  /** Follows the node's fenced and unfenced events until its event stream ends. */
  async watch(node: ShardNode): Promise<void> {
    for await (const e of node.events()) {
      if (e.type === "fenced") this.fence(true);
      else if (e.type === "unfenced") this.fence(false);
    }
  }

  /**
   * Waits for the queue to be idle, up to `timeoutMs`; then stops taking work, and what never
   * started is dropped (its callers get their `dropped` value). Resolves true when it was idle.
   */
  async close(clock: Clock, timeoutMs: number): Promise<boolean> {
    // Nothing more will unfence a closing node: run what waits, to the deadline.
    this.#queue.start();
    let timer: unknown;
    const idle = await Promise.race([
      this.#queue.onIdle().then(() => true),
      new Promise<boolean>((r) => {
        timer = clock.setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clock.clearTimeout(timer);
    this.#closed = true;
    if (!idle) {
      const { size, pending } = this.#queue;
      this.#logger.warn(
        `node ${this.#nodeId}: closing with background work unfinished after ${timeoutMs} ms (${pending} running, ${size} waiting: dropped)`,
      );
      for (const ac of [...this.#waiting]) ac.abort(DROP);
    }
    return idle;
  }

  get stats(): BackgroundStats {
    const q = this.#queue;
    const queued = (k: BackgroundKind) => q.sizeBy({ priority: BACKGROUND_PRIORITY[k] });
    return {
      concurrency: q.concurrency,
      paused: q.isPaused ? 1 : 0,
      size: q.size,
      pending: q.pending,
      queuedHandoff: queued("handoff"),
      queuedRefill: queued("refill"),
      queuedMaintenance: queued("maintenance"),
      runningHandoff: this.#running.handoff,
      runningRefill: this.#running.refill,
      runningMaintenance: this.#running.maintenance,
      addedHandoff: this.#added.handoff,
      addedRefill: this.#added.refill,
      addedMaintenance: this.#added.maintenance,
      dropped: this.#dropped,
      failed: this.#failed,
    };
  }
}

function zero(): PerKind {
  return { handoff: 0, refill: 0, maintenance: 0 };
}

/** Stats of a node without background work (a client). */
export function emptyBackgroundStats(): BackgroundStats {
  return {
    concurrency: 0,
    paused: 0,
    size: 0,
    pending: 0,
    queuedHandoff: 0,
    queuedRefill: 0,
    queuedMaintenance: 0,
    runningHandoff: 0,
    runningRefill: 0,
    runningMaintenance: 0,
    addedHandoff: 0,
    addedRefill: 0,
    addedMaintenance: 0,
    dropped: 0,
    failed: 0,
  };
}
