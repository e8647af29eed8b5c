// The parent side shared by NodeProcess and ShardingProcess: a child process that reports
// "ready" or a start error, streams ownership events, and answers numbered commands over IPC.
import type { ShardEvent } from "@keyhold/core";
import type { RunningChild } from "./child.js";

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

export type ChildMessage = { type: string; [k: string]: unknown };

export abstract class IpcProcess implements AsyncDisposable {
  readonly #child: RunningChild;
  readonly #pending = new Map<number, (v: unknown) => void>();
  readonly events: TimedEvent[] = [];
  #req = 0;
  id = "";

  protected constructor(child: RunningChild) {
    this.#child = child;
  }

  /** Routes the child's messages and resolves on "ready"; rejects on a start error or an early exit. */
  protected ready(label: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#child.process.on("message", (m: ChildMessage) => {
        if (m.type === "ready") {
          this.id = m.id as string;
          resolve();
        } else if (m.type === "error") {
          reject(new ChildStartError(m.name as string, m.code as string | undefined, m.message as string));
        } else if (m.type === "event") this.events.push({ event: m.event as ShardEvent, at: m.at as number });
        else if (m.type === "reply") {
          this.#pending.get(m.req as number)?.(m.value);
          this.#pending.delete(m.req as number);
        } else this.onMessage(m);
      });
      void this.#child.exited.then((code) =>
        reject(new Error(`${label} exited with ${code} before ready:\n${this.#child.logs().join("\n")}`)),
      );
    });
  }

  /** Messages of kinds this base does not know. */
  protected onMessage(_m: ChildMessage): void {}

  /** Sends a command and resolves with the child's answer. */
  protected request<T>(msg: Record<string, unknown>, timeout = 30_000): Promise<T> {
    const req = ++this.#req;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(req);
        reject(new Error(`${this.id} did not answer ${String(msg.cmd)} within ${timeout} ms`));
      }, timeout);
      this.#pending.set(req, (v) => {
        clearTimeout(t);
        resolve(v as T);
      });
      this.#child.process.send({ ...msg, req });
    });
  }

  /** Whether the IPC channel is still open (the child has not exited or disconnected). */
  protected get connected(): boolean {
    return this.#child.process.connected;
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
