// Starts a real nats-server process on random loopback ports for tests and benchmarks,
// and restarts it on the same ports so clients can reconnect.
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import { sleep } from "./wait-for.js";

export interface NatsServerOptions {
  /** Enable JetStream with its store in the server's temp dir (kept across restarts). */
  jetstream?: boolean;
  /** Turn on the server's debug logging and echo its output to this process's stderr. */
  debug?: boolean;
  /** Extra server configuration, deep-merged over the defaults (arrays are replaced, not merged). */
  config?: Record<string, unknown>;
  /** The nats-server executable: a name looked up on PATH, or a path. Default "nats-server". */
  binary?: string;
}

/** Contents of the `<name>_<pid>.ports` file nats-server writes once it listens. */
interface PortsFile {
  nats?: string[];
  monitoring?: string[];
  cluster?: string[];
}

interface Run {
  child: ChildProcess;
  /**
   * Resolves, with how it ended, once the process is gone and its output has been read (so logs()
   * is complete); or with the reason if spawning failed.
   */
  exited: Promise<string>;
  done: boolean;
}

const STARTUP_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LINES = 200;
/** How many log lines a failed start puts into its Error. */
const ERROR_LOG_LINES = 40;

// Servers that may still be running. The only use is the 'exit' hook below: a test that throws
// before close(), or a benchmark that calls process.exit(), would otherwise orphan nats-server
// processes that keep their ports and outlive the test run. 'exit' listeners must be synchronous,
// so a SIGKILL is all that can be done there (temp dirs stay behind). It cannot help when this
// process itself is killed by a signal, so close() every server (or use `await using`).
const live = new Set<ChildProcess>();
let reaperInstalled = false;

function track(child: ChildProcess): void {
  if (!reaperInstalled) {
    reaperInstalled = true;
    process.on("exit", () => {
      for (const c of live) {
        try {
          c.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
    });
  }
  live.add(child);
}

export class NatsServer implements AsyncDisposable {
  readonly #dir: string;
  readonly #binary: string;
  readonly #debug: boolean;
  readonly #logs: string[] = [];
  #config: Record<string, unknown>;
  #run: Run | undefined;
  #ports: PortsFile | undefined;
  #closing: Promise<void> | undefined;

  private constructor(dir: string, binary: string, debug: boolean, config: Record<string, unknown>) {
    this.#dir = dir;
    this.#binary = binary;
    this.#debug = debug;
    this.#config = config;
  }

  /** Starts a server on random loopback ports and resolves once it accepts TCP connections. */
  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    // Resolve before creating anything, so a missing binary leaves nothing to clean up.
    const binary = await resolveBinary(opts.binary ?? "nats-server");
    const dir = await mkdtemp(join(tmpdir(), "keyhold-nats-"));
    const base: Record<string, unknown> = {
      host: "127.0.0.1",
      port: -1,
      http: "127.0.0.1:-1",
      ports_file_dir: dir,
    };
    if (opts.jetstream) base.jetstream = { store_dir: join(dir, "js") };
    if (opts.debug) base.debug = true;
    const server = new NatsServer(dir, binary, opts.debug ?? false, deepMerge(base, opts.config ?? {}));
    try {
      await server.#launch();
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

  /** Client URL, e.g. "nats://127.0.0.1:4222". Unchanged by restart(). */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get port(): number {
    return portOf(this.#ports?.nats?.[0], "client");
  }

  /** Base URL of the HTTP monitoring endpoint, e.g. "http://127.0.0.1:8222". */
  get monitorUrl(): string {
    const url = this.#ports?.monitoring?.[0];
    if (url === undefined) throw new Error("nats-server has no monitoring endpoint (config sets no http)");
    return url;
  }

  /** Port for route connections, if the server is configured as a cluster member. */
  get clusterPort(): number | undefined {
    const url = this.#ports?.cluster?.[0];
    return url === undefined ? undefined : portOf(url, "cluster");
  }

  /** Pid of the current process, or of the last one if the server is stopped. */
  get pid(): number {
    const pid = this.#run?.child.pid;
    if (pid === undefined) throw new Error("nats-server has no process");
    return pid;
  }

  get running(): boolean {
    return this.#run !== undefined && !this.#run.done;
  }

  /** The server's private temp dir: config file, ports file and the JetStream store. */
  get dir(): string {
    return this.#dir;
  }

  /** The last ~200 lines the server printed, across restarts; for debugging failing tests. */
  logs(): string[] {
    return [...this.#logs];
  }

  /** SIGTERM, then waits for the process to exit (SIGKILL if it takes longer than 10 s). */
  async stop(): Promise<void> {
    const run = this.#run;
    if (run === undefined || run.done) return;
    run.child.kill("SIGTERM");
    const timer = setTimeout(() => run.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    try {
      await run.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL, then waits for the process to exit: clients see the connection drop, no goodbye. */
  async kill(): Promise<void> {
    const run = this.#run;
    if (run === undefined || run.done) return;
    run.child.kill("SIGKILL");
    await run.exited;
  }

  /**
   * Stops the server if it runs and starts it again on the same client, monitoring and cluster
   * ports with the same JetStream store. `config` is deep-merged into the configuration for this
   * and later starts (a cluster uses it to refresh routes).
   */
  async restart(config?: Record<string, unknown>): Promise<void> {
    if (this.#closing !== undefined) throw new Error("nats-server is closed");
    await this.stop();
    if (config !== undefined) this.#config = deepMerge(this.#config, config);
    await this.#launch();
  }

  /** Kills the server if it runs and removes its temp dir. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.kill();
      await rm(this.#dir, { recursive: true, force: true });
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #launch(): Promise<void> {
    const confPath = join(this.#dir, "nats-server.conf");
    await writeFile(confPath, `${JSON.stringify(this.#config, null, 2)}\n`);
    // A SIGKILLed server leaves its ports file behind; it names a dead pid, but clear it anyway.
    await removePortsFiles(this.#dir);

    const child = spawn(this.#binary, ["-c", confPath], { stdio: ["ignore", "pipe", "pipe"] });
    const run: Run = { child, done: false, exited: Promise.resolve("") };
    run.exited = new Promise<string>((resolve) => {
      const finish = (how: string) => {
        if (run.done) return;
        run.done = true;
        live.delete(child);
        resolve(how);
      };
      // 'close' rather than 'exit': it comes after stdout/stderr are drained, so a fatal
      // config error is already in logs() when the start error is built.
      child.once("close", (code, signal) =>
        finish(signal === null ? `exit code ${code}` : `signal ${signal}`),
      );
      child.on("error", (err: NodeJS.ErrnoException) => {
        // Only a failed spawn matters here; a failed kill() of a live process is not an exit.
        if (child.pid === undefined) finish(err.code === "ENOENT" ? notFound(this.#binary) : err.message);
      });
    });
    this.#run = run;
    if (child.pid === undefined) {
      // No process was created (the binary vanished since resolveBinary, or is not executable).
      throw new Error(await run.exited);
    }
    track(child);
    this.#log(`[keyhold/testing] started ${this.#binary} pid ${child.pid}`);
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) =>
        this.#log(line),
      );
    }

    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    let ports: PortsFile | undefined;
    while (ports === undefined) {
      if (run.done) throw this.#startError(`nats-server ended (${await run.exited}) before it was ready`);
      ports = await readPortsFile(this.#dir, child.pid);
      if (ports !== undefined) break;
      if (Date.now() >= deadline) {
        await this.kill();
        throw this.#startError(`nats-server wrote no ports file within ${STARTUP_TIMEOUT_MS / 1000} s`);
      }
      await sleep(25);
    }
    this.#ports = ports;
    this.#pinPorts(ports);

    // The ports file is written when the listeners are set up; confirm a client can actually connect.
    const port = this.port;
    while (!(await acceptsTcp(port))) {
      if (run.done) throw this.#startError(`nats-server ended (${await run.exited}) before it was ready`);
      if (Date.now() >= deadline) {
        await this.kill();
        throw this.#startError(
          `nats-server did not accept connections on ${port} within ${STARTUP_TIMEOUT_MS / 1000} s`,
        );
      }
      await sleep(25);
    }
  }

  /** After the first start, later starts must reuse the assigned ports: rewrite "-1" to the real ones. */
  #pinPorts(ports: PortsFile): void {
    this.#config.port = this.port;
    const monitoring = ports.monitoring?.[0];
    if (monitoring !== undefined) this.#config.http = new URL(monitoring).host;
    const cluster = ports.cluster?.[0];
    if (cluster !== undefined && isRecord(this.#config.cluster)) {
      this.#config.cluster = { ...this.#config.cluster, listen: new URL(cluster).host };
    }
  }

  #log(line: string): void {
    this.#logs.push(line);
    if (this.#logs.length > LOG_LINES) this.#logs.shift();
    if (this.#debug) process.stderr.write(`[nats-server ${this.#run?.child.pid ?? "?"}] ${line}\n`);
  }

  #startError(message: string): Error {
    const tail = this.#logs.slice(-ERROR_LOG_LINES);
    return new Error(`${message}\n--- last nats-server log lines ---\n${tail.join("\n") || "(no output)"}`);
  }
}

function notFound(binary: string): string {
  return `nats-server not found on PATH (looked for ${binary}); install it with \`apt-get install -y nats-server\``;
}

/** Finds the executable the way a shell would, so a missing binary is a clear error, not ENOENT. */
async function resolveBinary(binary: string): Promise<string> {
  const candidates = binary.includes("/")
    ? [binary]
    : (process.env.PATH ?? "")
        .split(delimiter)
        .filter((dir) => dir !== "")
        .map((dir) => join(dir, binary));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // Not here; keep looking.
    }
  }
  throw new Error(notFound(binary));
}

async function removePortsFiles(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name.endsWith(".ports")) await rm(join(dir, name), { force: true });
  }
}

/** The file is named after the executable's basename, so match on the pid suffix only. */
async function readPortsFile(dir: string, pid: number): Promise<PortsFile | undefined> {
  const name = (await readdir(dir)).find((n) => n.endsWith(`_${pid}.ports`));
  if (name === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(await readFile(join(dir, name), "utf8"));
    return isRecord(parsed) && Array.isArray(parsed.nats) ? (parsed as PortsFile) : undefined;
  } catch {
    // Caught mid-write; the next poll will see all of it.
    return undefined;
  }
}

function acceptsTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    socket.setTimeout(1_000);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}

function portOf(url: string | undefined, what: string): number {
  if (url === undefined) throw new Error(`nats-server reported no ${what} port`);
  return Number(new URL(url).port);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Objects merge key by key; anything else (arrays included) in `over` replaces what is in `base`. */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isRecord(current) && isRecord(value) ? deepMerge(current, value) : value;
  }
  return out;
}
