// The parent side shared by NodeProcess and ShardingProcess: a child process that reports
// "ready" or a start error, streams ownership events, and answers numbered commands over IPC.
import type { ShardEvent } from "@keyhold/core";
import { type AckRecord, parseAckRecord } from "./ack-log.js";
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
  /** Acknowledgement records the child sent with `emitAck` (over IPC), in arrival order. */
  readonly acks: AckRecord[] = [];
  /** Messages of type "ack" whose record was malformed (dropped). */
  malformedAcks = 0;
  #paused = false;
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
        } else if (m.type === "ack") {
          const record = parseAckRecord(m.record);
          if (record) this.acks.push(record);
          else this.malformedAcks++;
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

  /**
   * SIGSTOP: the process freezes at once (timers, sockets, event loop), as in a long GC pause
   * or a frozen VM; its peers see nothing from it until `resume()`. Commands sent meanwhile
   * are answered after the resume (or time out).
   */
  pause(): void {
    if (!this.#alive()) throw new Error(`${this.id || "process"} has exited; cannot pause`);
    this.#child.process.kill("SIGSTOP");
    this.#paused = true;
  }

  /** SIGCONT: the paused process runs on from where it stopped. */
  resume(): void {
    if (!this.#alive()) throw new Error(`${this.id || "process"} has exited; cannot resume`);
    this.#child.process.kill("SIGCONT");
    this.#paused = false;
  }

  /** Whether `pause()` was called without a `resume()` since. */
  get paused(): boolean {
    return this.#paused;
  }

  #alive(): boolean {
    return this.#child.process.exitCode === null && this.#child.process.signalCode === null;
  }

  /** Sends a signal (SIGKILL by default) and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.#child.process.exitCode === null && this.#child.process.signalCode === null) {
      this.#child.process.kill(signal);
      // A stopped process only acts on a catchable signal once it runs again.
      if (this.#paused && signal !== "SIGKILL") this.#child.process.kill("SIGCONT");
    }
    await this.#child.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
