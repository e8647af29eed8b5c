// A ShardNode in its own OS process, driven over IPC: what the multi-process and fault tests
// (kill -9, cut off from NATS) run against.
import type { ShardNodeOptions } from "@keyhold/core";
import { childEntry, spawnTs } from "./child.js";
import { IpcProcess } from "./ipc-process.js";

export interface NodeState {
  readonly id: string;
  readonly members: string[];
  readonly owned: number[];
  readonly fenced: boolean;
  readonly stats: Record<string, number>;
}

/** Options that survive JSON (no connection, transport, clock or logger). */
export type NodeProcessOptions = Omit<ShardNodeOptions, "connection" | "transport" | "clock" | "logger">;

export class NodeProcess extends IpcProcess {
  static async spawn(options: NodeProcessOptions, opts: { echo?: boolean } = {}): Promise<NodeProcess> {
    const np = new NodeProcess(
      spawnTs(childEntry("./node-process-child.ts"), [JSON.stringify(options)], opts),
    );
    await np.ready("node process");
    return np;
  }

  state(): Promise<NodeState> {
    return this.request({ cmd: "state" }, 10_000);
  }

  place(keys: readonly string[]): Promise<(string | null)[]> {
    return this.request({ cmd: "place", keys }, 10_000);
  }

  /** Graceful close in the child; resolves with the child's Date.now() when close() returned. */
  async close(): Promise<number> {
    if (!this.connected) return 0;
    const at = await this.request<number>({ cmd: "close" }, 10_000);
    await this.exited;
    return at;
  }
}
