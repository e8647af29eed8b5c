// Process A of the ask benchmark (host-child.ts), driven over IPC: its id, CPU time and stats.
import { fileURLToPath } from "node:url";
import type { Sharding } from "@keyhold/actors";
import { type RunningChild, spawnTs } from "@keyhold/testing";

export interface HostStats {
  readonly stats: ReturnType<Sharding["stats"]>;
  readonly heapUsed: number;
}

/** Process A, driven over IPC. */
export class HostProcess {
  readonly #child: RunningChild;
  readonly #pending = new Map<number, (v: unknown) => void>();
  #req = 0;
  id = "";

  private constructor(child: RunningChild) {
    this.#child = child;
  }

  static async spawn(args: readonly string[]): Promise<HostProcess> {
    const child = spawnTs(fileURLToPath(new URL("./host-child.ts", import.meta.url)), args);
    const hp = new HostProcess(child);
    await new Promise<void>((resolve, reject) => {
      child.process.on("message", (m: { type: string; [k: string]: unknown }) => {
        if (m.type === "ready") {
          hp.id = m.id as string;
          resolve();
        } else if (m.type === "error") reject(new Error(`process A failed to start: ${String(m.message)}`));
        else if (m.type === "reply") {
          hp.#pending.get(m.req as number)?.(m.value);
          hp.#pending.delete(m.req as number);
        }
      });
      void child.exited.then((code) =>
        reject(new Error(`process A exited with ${code} before ready:\n${child.logs().join("\n")}`)),
      );
    });
    return hp;
  }

  #call<T>(cmd: string, timeout = 30_000): Promise<T> {
    const req = ++this.#req;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(req);
        reject(new Error(`process A did not answer ${cmd} within ${timeout} ms`));
      }, timeout);
      this.#pending.set(req, (v) => {
        clearTimeout(t);
        resolve(v as T);
      });
      this.#child.process.send({ cmd, req });
    });
  }

  /** Process A's CPU time so far (user + system), microseconds. */
  async cpuMicros(): Promise<number> {
    const u = await this.#call<{ user: number; system: number }>("cpu");
    return u.user + u.system;
  }

  stats(): Promise<HostStats> {
    return this.#call<HostStats>("stats");
  }

  /** Graceful close; SIGKILL if that fails or hangs. */
  async close(): Promise<void> {
    if (this.#child.process.connected) await this.#call("close").catch(() => {});
    if (this.#child.process.exitCode === null && this.#child.process.signalCode === null)
      this.#child.process.kill("SIGKILL");
    await this.#child.exited;
  }
}
