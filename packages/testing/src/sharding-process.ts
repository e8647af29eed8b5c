// A Sharding node in its own OS process, driven over IPC: for multi-process entity tests and
// demos that kill nodes with SIGKILL.
import type { HandoffInfo, ShardingOptions, ShardingStats } from "@keyhold/actors";
import { childEntry, spawnTs } from "./child.js";
import { type ChildMessage, IpcProcess } from "./ipc-process.js";

/**
 * Options that survive JSON (no connection, transport, clock, logger, classes or store
 * factory); `storeBucket` gives the node a NATS KV store with that bucket, `storeReplicas` its
 * JetStream replicas when the node creates it (default 1).
 */
export type ShardingProcessOptions = Omit<
  ShardingOptions,
  "connection" | "transport" | "clock" | "logger" | "entities" | "store"
> & { readonly storeBucket?: string; readonly storeReplicas?: number };

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

export class ShardingProcess extends IpcProcess {
  /** Activations and passivations the fixture entities reported (see `reportOracle`). */
  readonly oracle: OracleEvent[] = [];

  /**
   * Spawns a node hosting the classes exported as `entities` by `entitiesModule` (an absolute
   * path or file URL of a TypeScript module).
   */
  static async spawn(
    options: ShardingProcessOptions,
    entitiesModule: string,
    opts: { echo?: boolean } = {},
  ): Promise<ShardingProcess> {
    const sp = new ShardingProcess(
      spawnTs(childEntry("./sharding-process-child.ts"), [JSON.stringify(options), entitiesModule], opts),
    );
    await sp.ready("sharding process");
    return sp;
  }

  protected override onMessage(m: ChildMessage): void {
    if (m.type === "oracle") this.oracle.push(m.e as OracleEvent);
  }

  state(options: { timeout?: number } = {}): Promise<ShardingState> {
    return this.request({ cmd: "state" }, options.timeout);
  }

  /** Asks an entity from inside this node's process. */
  ask(
    type: string,
    key: string,
    handler: string,
    args: unknown[] = [],
    timeout?: number,
  ): Promise<AskResult> {
    return this.request(
      { cmd: "ask", type, key, handler, args, ...(timeout ? { timeout } : {}) },
      (timeout ?? 30_000) + 5_000,
    );
  }

  /** Graceful close (hand-off included); resolves with the child's timings and final stats. */
  async close(): Promise<{ started: number; finished: number; stats: ShardingStats } | undefined> {
    if (!this.connected) return undefined;
    const r = await this.request<{ started: number; finished: number; stats: ShardingStats }>(
      { cmd: "close" },
      60_000,
    );
    await this.exited;
    return r;
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
