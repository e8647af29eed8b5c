// Runs a TypeScript entry point as a separate Node process (source conditions, tsx loader) with
// an IPC channel, for tests that need real processes to kill -9.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Live child processes, killed if the test process exits without cleaning up. */
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

export interface ChildOptions {
  /** Environment added to this process's. */
  readonly env?: Record<string, string>;
  /** Echo the child's stdout/stderr to ours, prefixed. @default false */
  readonly echo?: boolean;
}

export interface RunningChild {
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Last lines of the child's output. */
  logs(): string[];
}

/** Resolves a path relative to this package's src (for the bundled child entry points). */
export function childEntry(name: string): string {
  return fileURLToPath(new URL(name, import.meta.url));
}

export function spawnTs(entry: string, args: readonly string[] = [], opts: ChildOptions = {}): RunningChild {
  const child = spawn(process.execPath, ["--conditions=@keyhold/source", "--import", "tsx", entry, ...args], {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    env: { ...process.env, ...opts.env },
  });
  children.add(child);
  const lines: string[] = [];
  const keep = (prefix: string) => (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (!line) continue;
      lines.push(line);
      if (lines.length > 300) lines.shift();
      if (opts.echo) process.stderr.write(`${prefix} ${line}\n`);
    }
  };
  child.stdout?.on("data", keep(`[${child.pid}]`));
  child.stderr?.on("data", keep(`[${child.pid} err]`));
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      children.delete(child);
      resolve(code);
    });
  });
  return { process: child, exited, logs: () => [...lines] };
}

/**
 * Runs a TypeScript program to completion the way a user would (its own process, source
 * conditions, tsx), without NATS_URL unless given, and resolves with its exit code and output.
 * Killed after `timeoutMs`.
 */
export function runTsProgram(
  entry: string,
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.env?.NATS_URL === undefined) delete env.NATS_URL;
    const child = spawn(process.execPath, ["--conditions=@keyhold/source", "--import", "tsx", entry], {
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 90_000);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, out });
    });
  });
}
