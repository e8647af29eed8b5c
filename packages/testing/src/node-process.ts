// A ShardNode in its own OS process, driven over IPC: what the multi-process and fault tests
// (kill -9, cut off from NATS) run against.
import type { ShardEvent, ShardNodeOptions } from "@keyhold/core";
import { childEntry, type RunningChild, spawnTs } from "./child.js";

export interface NodeState {
  readonly id: string;
  readonly members: string[];
  readonly owned: number[];
  readonly fenced: boolean;
  readonly stats: Record<string, number>;
}

/** Options that survive JSON (no connection, transport, clock or logger). */
export type NodeProcessOptions = Omit<ShardNodeOptions, "connection" | "transport" | "clock" | "logger">;

export interface TimedEvent {
  readonly event: ShardEvent;
  /** Date.now() in the child when it saw the event. */
  readonly at: number;
}

/** Error raised in the child during start(), carried over with its name and code. */
export class ChildStartError extends Error {
  readonly code: string | undefined;
  constructor(name: string, code: string | undefined, message: string) {
    super(message);
    this.name = name;
    this.code = code;
  }
}

export class NodeProcess implements AsyncDisposable {
  readonly #child: RunningChild;
  readonly #pending = new Map<number, (v: unknown) => void>();
  readonly events: TimedEvent[] = [];
  #req = 0;
  id = "";

  private constructor(child: RunningChild) {
    this.#child = child;
  }

  static async spawn(options: NodeProcessOptions, opts: { echo?: boolean } = {}): Promise<NodeProcess> {
    const child = spawnTs(childEntry("./node-process-child.ts"), [JSON.stringify(options)], opts);
    const np = new NodeProcess(child);
    const ready = new Promise<void>((resolve, reject) => {
      child.process.on("message", (m: { type: string; [k: string]: unknown }) => {
        if (m.type === "ready") {
          np.id = m.id as string;
          resolve();
        } else if (m.type === "error") {
          reject(new ChildStartError(m.name as string, m.code as string | undefined, m.message as string));
        } else if (m.type === "event") np.events.push({ event: m.event as ShardEvent, at: m.at as number });
        else if (m.type === "reply") {
          np.#pending.get(m.req as number)?.(m.value);
          np.#pending.delete(m.req as number);
        }
      });
      void child.exited.then((code) =>
        reject(new Error(`node process exited with ${code} before ready:\n${child.logs().join("\n")}`)),
      );
    });
    await ready;
    return np;
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

  #ask<T>(msg: Record<string, unknown>, timeout = 10_000): Promise<T> {
    const req = ++this.#req;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(req);
        reject(new Error(`node ${this.id} did not answer ${String(msg.cmd)} within ${timeout} ms`));
      }, timeout);
      this.#pending.set(req, (v) => {
        clearTimeout(t);
        resolve(v as T);
      });
      this.#child.process.send({ ...msg, req });
    });
  }

  state(): Promise<NodeState> {
    return this.#ask({ cmd: "state" });
  }

  place(keys: readonly string[]): Promise<(string | null)[]> {
    return this.#ask({ cmd: "place", keys });
  }

  /** Graceful close in the child; resolves with the child's Date.now() when close() returned. */
  async close(): Promise<number> {
    if (!this.#child.process.connected) return 0;
    const at = await this.#ask<number>({ cmd: "close" });
    await this.#child.exited;
    return at;
  }

  /** Sends a signal (SIGKILL by default) and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.#child.process.exitCode === null && this.#child.process.signalCode === null) {
      this.#child.process.kill(signal);
    }
    await this.#child.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
