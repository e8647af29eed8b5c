// A Sharding node in its own OS process, driven over IPC: for multi-process entity tests and
// demos that kill nodes with SIGKILL.
import type { HandoffInfo, ShardingOptions, ShardingStats } from "@keyhold/actors";
import { childEntry, type RunningChild, spawnTs } from "./child.js";
import { ChildStartError, type TimedEvent } from "./node-process.js";

/**
 * Options that survive JSON (no connection, transport, clock, logger, classes or store
 * factory); `storeBucket` gives the node a NATS KV store with that bucket.
 */
export type ShardingProcessOptions = Omit<
  ShardingOptions,
  "connection" | "transport" | "clock" | "logger" | "entities" | "store"
> & { readonly storeBucket?: string };

/** An entity activation or passivation reported by a fixture through the oracle channel. */
export interface OracleEvent {
  readonly key: string;
  readonly pid: number;
  readonly event: "activate" | "passivate";
  readonly at: number;
}

export interface ShardingState {
  readonly id: string;
  readonly members: string[];
  readonly owned: number[];
  readonly fenced: boolean;
  readonly stats: ShardingStats;
  /** Completed hand-offs on this node (acquire to serving), oldest first. */
  readonly handoffs: readonly HandoffInfo[];
}

export type AskResult =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly name: string; readonly code?: string; readonly message: string };

export class ShardingProcess implements AsyncDisposable {
  readonly #child: RunningChild;
  readonly #pending = new Map<number, (v: unknown) => void>();
  readonly events: TimedEvent[] = [];
  /** Activations and passivations the fixture entities reported (see `reportOracle`). */
  readonly oracle: OracleEvent[] = [];
  #req = 0;
  id = "";

  private constructor(child: RunningChild) {
    this.#child = child;
  }

  /**
   * Spawns a node hosting the classes exported as `entities` by `entitiesModule` (an absolute
   * path or file URL of a TypeScript module).
   */
  static async spawn(
    options: ShardingProcessOptions,
    entitiesModule: string,
    opts: { echo?: boolean } = {},
  ): Promise<ShardingProcess> {
    const child = spawnTs(
      childEntry("./sharding-process-child.ts"),
      [JSON.stringify(options), entitiesModule],
      opts,
    );
    const sp = new ShardingProcess(child);
    await new Promise<void>((resolve, reject) => {
      child.process.on("message", (m: { type: string; [k: string]: unknown }) => {
        if (m.type === "ready") {
          sp.id = m.id as string;
          resolve();
        } else if (m.type === "error") {
          reject(new ChildStartError(m.name as string, m.code as string | undefined, m.message as string));
        } else if (m.type === "oracle") sp.oracle.push(m.e as OracleEvent);
        else if (m.type === "event")
          sp.events.push({ event: m.event as TimedEvent["event"], at: m.at as number });
        else if (m.type === "reply") {
          sp.#pending.get(m.req as number)?.(m.value);
          sp.#pending.delete(m.req as number);
        }
      });
      void child.exited.then((code) =>
        reject(new Error(`sharding process exited with ${code} before ready:\n${child.logs().join("\n")}`)),
      );
    });
    return sp;
  }

  get pid(): number {
    return this.#child.process.pid ?? -1;
  }

  get exited(): Promise<number | null> {
    return this.#child.exited;
  }

  logs(): string[] {
    return this.#child.logs();
  }

  #ask<T>(msg: Record<string, unknown>, timeout = 30_000): Promise<T> {
    const req = ++this.#req;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(req);
        reject(new Error(`sharding ${this.id} did not answer ${String(msg.cmd)} within ${timeout} ms`));
      }, timeout);
      this.#pending.set(req, (v) => {
        clearTimeout(t);
        resolve(v as T);
      });
      this.#child.process.send({ ...msg, req });
    });
  }

  state(): Promise<ShardingState> {
    return this.#ask({ cmd: "state" });
  }

  /** Asks an entity from inside this node's process. */
  ask(
    type: string,
    key: string,
    handler: string,
    args: unknown[] = [],
    timeout?: number,
  ): Promise<AskResult> {
    return this.#ask(
      { cmd: "ask", type, key, handler, args, ...(timeout ? { timeout } : {}) },
      (timeout ?? 30_000) + 5_000,
    );
  }

  /** Graceful close (hand-off included); resolves with the child's timings and final stats. */
  async close(): Promise<{ started: number; finished: number; stats: ShardingStats } | undefined> {
    if (!this.#child.process.connected) return undefined;
    const r = await this.#ask<{ started: number; finished: number; stats: ShardingStats }>(
      { cmd: "close" },
      60_000,
    );
    await this.#child.exited;
    return r;
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.#child.process.exitCode === null && this.#child.process.signalCode === null)
      this.#child.process.kill(signal);
    await this.#child.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/**
 * For fixture entities in a ShardingProcess: reports an activation or passivation to the
 * parent, which keeps them in `ShardingProcess.oracle` (the single-instance oracle).
 */
export function reportOracle(key: string, event: OracleEvent["event"]): void {
  process.send?.({ type: "oracle", e: { key, pid: process.pid, event, at: Date.now() } });
}

/**
 * The longest time, over all keys, during which two different processes both had the same
 * key active. Activity of a process without a passivation ends at `endOf(pid)` (its exit).
 */
export function longestOverlap(
  events: readonly OracleEvent[],
  endOf: (pid: number) => number,
): { ms: number; key: string } {
  const byKey = new Map<string, OracleEvent[]>();
  for (const e of events) {
    const list = byKey.get(e.key) ?? [];
    list.push(e);
    byKey.set(e.key, list);
  }
  let worst = { ms: 0, key: "" };
  for (const [key, list] of byKey) {
    const intervals: { pid: number; from: number; to: number }[] = [];
    const open = new Map<number, number>();
    for (const e of [...list].sort((a, b) => a.at - b.at)) {
      if (e.event === "activate") open.set(e.pid, e.at);
      else {
        const from = open.get(e.pid);
        if (from !== undefined) intervals.push({ pid: e.pid, from, to: e.at });
        open.delete(e.pid);
      }
    }
    for (const [pid, from] of open) intervals.push({ pid, from, to: endOf(pid) });
    for (let i = 0; i < intervals.length; i++) {
      for (let j = i + 1; j < intervals.length; j++) {
        const a = intervals[i]!;
        const b = intervals[j]!;
        if (a.pid === b.pid) continue;
        const ms = Math.min(a.to, b.to) - Math.max(a.from, b.from);
        if (ms > worst.ms) worst = { ms, key };
      }
    }
  }
  return worst;
}
