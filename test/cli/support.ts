// Shared setup for the CLI tests: a NATS server, node processes hosting the fixture entities,
// and `keyhold` run in-process with its output captured.
import { run } from "@keyhold/cli";
import type { ShardingProcessOptions } from "@keyhold/testing";
import { spawnNode } from "../actors/support.js";

export { connectClient, LEASE } from "../actors/support.js";

export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs `keyhold ARGS` in this process; `env` replaces the environment (no NATS_URL leaks in). */
export async function keyhold(
  args: readonly string[],
  opts: {
    env?: Record<string, string>;
    tty?: boolean;
    signal?: AbortSignal;
    /** Sees stdout as it is written (for commands that keep running). */
    onStdout?: (s: string) => void;
  } = {},
): Promise<CliResult> {
  let out = "";
  let err = "";
  const code = await run(args, {
    stdout: {
      write: (s: string) => {
        out += s;
        opts.onStdout?.(s);
      },
      isTTY: opts.tty ?? false,
    },
    stderr: {
      write: (s: string) => {
        err += s;
      },
    },
    env: opts.env ?? {},
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { code, out, err };
}

/** `keyhold ARGS --json`, parsed; fails the test on a non-zero exit. */
export async function keyholdJson<T = Record<string, unknown>>(args: readonly string[]): Promise<T> {
  const r = await keyhold([...args, "--json"]);
  if (r.code !== 0) throw new Error(`keyhold ${args.join(" ")} exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as T;
}

export function spawnNodes(
  url: string,
  cluster: string,
  ids: readonly string[],
  extra: Partial<ShardingProcessOptions> = {},
) {
  return Promise.all(ids.map((nodeId) => spawnNode(url, cluster, { nodeId, ...extra })));
}
