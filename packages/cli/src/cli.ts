// The `keyhold` command line: argument parsing (node:util parseArgs, no dependency), help
// texts, and one function per command. `run` returns the exit code instead of exiting, so
// tests drive it in-process.
import { parseArgs } from "node:util";
import { ID_PATTERN, KeyholdError, type NodeReport } from "@keyhold/core";
import { AdminClient, type ConnectOptions } from "./client.js";
import { startDashboard } from "./dashboard.js";
import { UsageError } from "./errors.js";
import { bold, duration, green, ms, num, red, type Style, table, yellow } from "./format.js";
import {
  entitiesView,
  handoffsView,
  healthView,
  membersView,
  ownersView,
  placeView,
  ringView,
  statsView,
} from "./view.js";

/** Where a command writes, and the environment it reads (process's own in main.ts). */
export interface Io {
  readonly stdout: { write(s: string): unknown; readonly isTTY?: boolean | undefined };
  readonly stderr: { write(s: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Ends `watch` and `dashboard`; main.ts aborts it on SIGINT/SIGTERM. */
  readonly signal?: AbortSignal;
}

const DEFAULT_SERVER = "nats://127.0.0.1:4222";
const DEFAULT_TIMEOUT_MS = 2000;
/** Dot-separated subject tokens, no wildcards or spaces. */
const INBOX_PREFIX = /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$/;

const globalOptions = {
  server: { type: "string", short: "s" },
  cluster: { type: "string", short: "c" },
  creds: { type: "string" },
  user: { type: "string" },
  password: { type: "string" },
  token: { type: "string" },
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "inbox-prefix": { type: "string" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const commandOptions = {
  interval: { type: "string" },
  count: { type: "string" },
  wait: { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
} as const;

interface Command {
  readonly args: readonly string[];
  readonly options: readonly (keyof typeof commandOptions)[];
  readonly summary: string;
  readonly details: string;
}

const COMMANDS: Readonly<Record<string, Command>> = {
  members: {
    args: [],
    options: [],
    summary: "live members with lease age, fenced state, partitions owned, uptime",
    details:
      "Lease age is the freshest any node reports: ms since the member's newest heartbeat was emitted.",
  },
  ring: {
    args: [],
    options: [],
    summary: "every partition with its owner, the HRW-expected owner and its hand-off state",
    details: "Owner is the node that reports owning the partition; '-' when none or several do.",
  },
  place: {
    args: ["KEY"],
    options: [],
    summary: "the partition of KEY and the member that owns it",
    details: "Computed like the nodes do, with the ring size and hash version the cluster reports.",
  },
  owners: {
    args: ["KEY", "N"],
    options: [],
    summary: "the N best members for KEY, best first (primary, then replicas)",
    details: "N is an integer from 1 to 1000.",
  },
  entities: {
    args: [],
    options: [],
    summary: "active and known entities per type, in total and per node",
    details: "Active: a live instance in memory. Known: state held on the node (active or passivated).",
  },
  handoffs: {
    args: [],
    options: [],
    summary: "hand-offs in progress and the recent completed ones, per node",
    details: "In progress: 'pending' (the new owner is pulling) or 'releasing' (the old owner drains).",
  },
  stats: {
    args: [],
    options: [],
    summary: "per node: asks/s, p50/p99 handling latency, mailbox depth, entities, hand-offs",
    details: "Rates and latencies cover the last 10 seconds; --json adds every counter.",
  },
  health: {
    args: [],
    options: [],
    summary: "exit 0 when healthy, 1 otherwise (for probes)",
    details:
      "Healthy: every member answered, none is fenced, all agree on members and settings,\nand every partition has exactly one owner.",
  },
  watch: {
    args: [],
    options: ["interval", "count"],
    summary: "a live view of members, stats and hand-offs, redrawn every interval",
    details:
      "  --interval MS   redraw period (default 1000)\n  --count N       stop after N frames (default: until Ctrl-C)\nWith --json, one JSON object per line per frame.",
  },
  drain: {
    args: ["NODE"],
    options: ["wait"],
    summary: "make NODE leave gracefully (only if it was started with admin.allowDrain)",
    details:
      "  --wait MS       wait up to MS for NODE to leave the member list (default 30000; 0: do not wait)",
  },
  dashboard: {
    args: [],
    options: ["port", "host", "interval"],
    summary: "serve a live web page of the cluster (ring grid, members, charts)",
    details:
      "  --port N        port to listen on (default 4400; 0 picks a free one)\n  --host ADDR     address to listen on (default 127.0.0.1)\n  --interval MS   poll period (default 500)",
  },
};

const GLOBAL_HELP = `Options (every command):
  -s, --server URL      NATS server(s), comma-separated (default $NATS_URL or ${DEFAULT_SERVER})
  -c, --cluster NAME    the Keyhold cluster (default $KEYHOLD_CLUSTER)
      --creds FILE      NATS credentials file
      --user U --password P   NATS user and password
      --token T         NATS token
      --tls-ca FILE --tls-cert FILE --tls-key FILE   TLS
      --inbox-prefix P  subscribe for answers on P.> instead of _INBOX.> (NATS permissions)
      --timeout MS      how long to collect answers (default ${DEFAULT_TIMEOUT_MS})
      --json            machine-readable output (shapes in docs/reference/cli.md)
  -h, --help            help; \`keyhold COMMAND --help\` for one command
Colour only on a terminal and when NO_COLOR is unset. Exit code 1 on any error.`;

export function helpText(command?: string): string {
  const c = command === undefined ? undefined : COMMANDS[command];
  if (command !== undefined && c) {
    const usage = [`keyhold ${command}`, ...c.args, "[options]"].join(" ");
    return `Usage: ${usage}\n\n${c.summary}.\n${c.details}\n\n${GLOBAL_HELP}\n`;
  }
  const width = Math.max(...Object.keys(COMMANDS).map((k) => `${k} ${COMMANDS[k]!.args.join(" ")}`.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, cmd]) => `  ${`${name} ${cmd.args.join(" ")}`.padEnd(width)}  ${cmd.summary}`,
  );
  return `Usage: keyhold COMMAND [ARGS] [options]

Look inside a running Keyhold cluster over NATS. Every node answers; nothing else is needed.

Commands:
${lines.join("\n")}

${GLOBAL_HELP}
`;
}

interface Parsed {
  readonly command: string;
  readonly args: readonly string[];
  readonly connect: ConnectOptions;
  readonly cluster: string;
  readonly timeoutMs: number;
  readonly json: boolean;
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
}

function intOption(
  name: string,
  value: string | boolean | undefined,
  def: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return def;
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

const ALL_OPTIONS = { ...globalOptions, ...commandOptions } as const;

function parseArgv(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: ALL_OPTIONS,
    allowPositionals: true,
    strict: true,
    tokens: true,
  });
}

/** Parses argv; returns undefined after printing help. */
function parse(argv: readonly string[], io: Io): Parsed | undefined {
  let parsed: ReturnType<typeof parseArgv>;
  try {
    parsed = parseArgv(argv);
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split("\n")[0]} (see keyhold --help)`);
  }
  const { values, positionals, tokens } = parsed;
  const [command, ...args] = positionals;
  if (command === undefined || command === "help") {
    io.stdout.write(helpText(args[0]));
    if (command === undefined && !values.help) throw new UsageError("no command given (see keyhold --help)");
    return undefined;
  }
  const spec = COMMANDS[command];
  if (!spec) throw new UsageError(`unknown command "${command}" (see keyhold --help)`);
  if (values.help) {
    io.stdout.write(helpText(command));
    return undefined;
  }
  for (const t of tokens) {
    if (
      t.kind === "option" &&
      t.name in commandOptions &&
      !spec.options.includes(t.name as keyof typeof commandOptions)
    )
      throw new UsageError(`option --${t.name} does not apply to ${command} (see keyhold ${command} --help)`);
  }
  if (args.length !== spec.args.length) {
    throw new UsageError(
      `${command} takes ${spec.args.length === 0 ? "no arguments" : spec.args.join(" ")}, got ${args.length === 0 ? "none" : args.map((a) => JSON.stringify(a)).join(" ")} (see keyhold ${command} --help)`,
    );
  }
  const cluster = values.cluster ?? io.env.KEYHOLD_CLUSTER;
  if (cluster === undefined || cluster === "")
    throw new UsageError("no cluster given: pass --cluster NAME or set KEYHOLD_CLUSTER");
  if (!ID_PATTERN.test(cluster))
    throw new UsageError(`--cluster must be 1-64 letters, digits, _ or -, got ${JSON.stringify(cluster)}`);
  const server = values.server ?? io.env.NATS_URL ?? DEFAULT_SERVER;
  const servers = server
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (servers.length === 0)
    throw new UsageError(`--server must name a NATS URL, got ${JSON.stringify(server)}`);
  if ((values.user === undefined) !== (values.password === undefined))
    throw new UsageError("--user and --password go together");
  const inboxPrefix = values["inbox-prefix"];
  if (inboxPrefix !== undefined && !INBOX_PREFIX.test(inboxPrefix))
    throw new UsageError(
      `--inbox-prefix must be subject tokens without wildcards (such as _INBOX_ops), got ${JSON.stringify(inboxPrefix)}`,
    );
  return {
    command,
    args,
    cluster,
    json: values.json === true,
    timeoutMs: intOption("timeout", values.timeout, DEFAULT_TIMEOUT_MS, 1, 600_000),
    values,
    connect: {
      servers,
      creds: values.creds,
      user: values.user,
      password: values.password,
      token: values.token,
      tlsCa: values["tls-ca"],
      tlsCert: values["tls-cert"],
      tlsKey: values["tls-key"],
      inboxPrefix,
      reconnect: command === "watch" || command === "dashboard",
    },
  };
}

/** Runs one command line; resolves with the exit code. Errors become one line on stderr. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  const style: Style = { color: io.stdout.isTTY === true && !io.env.NO_COLOR };
  try {
    const p = parse(argv, io);
    if (!p) return 0;
    const client = await AdminClient.connect(p.cluster, p.connect);
    try {
      return await execute(p, client, io, style);
    } finally {
      await client.close();
    }
  } catch (err) {
    const message =
      err instanceof KeyholdError
        ? err.message
        : err instanceof Error
          ? `${err.name}: ${err.message}`
          : String(err);
    const stderrStyle: Style = { color: style.color };
    io.stderr.write(`${red(stderrStyle, "keyhold:")} ${message.split("\n")[0]}\n`);
    return 1;
  }
}

const out = (io: Io, text: string) => io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
const json = (io: Io, value: unknown) => io.stdout.write(`${JSON.stringify(value)}\n`);

async function execute(p: Parsed, client: AdminClient, io: Io, style: Style): Promise<number> {
  const gather = () => client.gather(p.timeoutMs);
  switch (p.command) {
    case "members": {
      const v = membersView(p.cluster, await gather());
      if (p.json) json(io, v);
      else out(io, membersText(style, v));
      return 0;
    }
    case "ring": {
      const v = ringView(p.cluster, await gather());
      if (p.json) json(io, v);
      else {
        const rows = v.partitions.map((x) => [
          String(x.partition),
          x.owner ?? (x.claimedBy.length > 1 ? yellow(style, x.claimedBy.join("+")) : red(style, "-")),
          x.expected ?? "-",
          x.state === "ready" ? "ready" : x.state === null ? "-" : yellow(style, x.state),
        ]);
        out(
          io,
          `${bold(style, `cluster ${p.cluster}`)}: ${v.ringSize} partitions, hash ${v.hash}, ${v.members.length} members\n` +
            table(style, ["PARTITION", "OWNER", "EXPECTED", "STATE"], rows),
        );
      }
      return 0;
    }
    case "place": {
      const v = placeView(await gather(), p.args[0]!);
      if (p.json) json(io, v);
      else out(io, `${v.key}: partition ${v.partition}, owner ${v.owner ?? "(no live member)"}`);
      return 0;
    }
    case "owners": {
      const n = intOption("N", p.args[1], 1, 1, 1000);
      const v = ownersView(await gather(), p.args[0]!, n);
      if (p.json) json(io, v);
      else out(io, `${v.key}: partition ${v.partition}, owners ${v.owners.join(", ") || "(no live member)"}`);
      return 0;
    }
    case "entities": {
      const v = entitiesView(await gather());
      if (p.json) json(io, v);
      else {
        const rows = v.types.map((t) => [
          t.type,
          String(t.active),
          String(t.known),
          Object.entries(t.nodes)
            .map(([id, c]) => `${id}:${c.active}/${c.known}`)
            .join(" "),
        ]);
        rows.push([bold(style, "total"), String(v.total.active), String(v.total.known), ""]);
        out(io, table(style, ["TYPE", "ACTIVE", "KNOWN", "PER NODE (active/known)"], rows));
      }
      return 0;
    }
    case "handoffs": {
      const v = handoffsView(await gather());
      if (p.json) json(io, v);
      else out(io, handoffsText(style, v));
      return 0;
    }
    case "stats": {
      const v = statsView(await gather());
      if (p.json) json(io, v);
      else out(io, statsText(style, v.nodes));
      return 0;
    }
    case "health": {
      const v = healthView(await gather());
      if (p.json) json(io, v);
      else
        out(
          io,
          v.healthy
            ? `${green(style, "healthy")}: ${v.answered} of ${v.members} members answered`
            : `${red(style, "unhealthy")}: ${v.problems.join("; ")}`,
        );
      return v.healthy ? 0 : 1;
    }
    case "watch":
      return watch(p, client, io, style);
    case "drain":
      return drain(p, client, io);
    case "dashboard": {
      const port = intOption("port", p.values.port, 4400, 0, 65535);
      const host = typeof p.values.host === "string" ? p.values.host : "127.0.0.1";
      const intervalMs = intOption("interval", p.values.interval, 500, 50, 60_000);
      // Fails fast when nothing answers, like every other command.
      await gather();
      const d = await startDashboard({
        client,
        port,
        host,
        intervalMs,
        timeoutMs: Math.min(p.timeoutMs, intervalMs * 2),
      });
      out(
        io,
        p.json ? JSON.stringify({ url: d.url }) : `keyhold dashboard for cluster ${p.cluster}: ${d.url}`,
      );
      await untilAborted(io.signal);
      await d.close();
      return 0;
    }
  }
  throw new UsageError(`unknown command "${p.command}"`);
}

function membersText(style: Style, v: ReturnType<typeof membersView>): string {
  const c = v.config;
  const rows = v.members.map((m) => [
    m.id,
    m.leaseAgeMs === null ? "-" : m.leaseAgeMs > c.ttlMs ? red(style, ms(m.leaseAgeMs)) : ms(m.leaseAgeMs),
    m.fenced === null ? red(style, "no answer") : m.fenced ? red(style, "FENCED") : "no",
    num(m.owned),
    duration(m.uptimeMs),
    m.drainAllowed ? "yes" : "no",
  ]);
  return (
    `${bold(style, `cluster ${v.cluster}`)}: ${v.members.length} members, ring ${c.ringSize}, hash ${c.hash}, ` +
    `heartbeat ${c.heartbeatMs} ms, ttl ${c.ttlMs} ms, skew ${c.skewMs} ms\n` +
    table(style, ["MEMBER", "LEASE AGE", "FENCED", "PARTITIONS", "UPTIME", "DRAIN"], rows) +
    (v.departed.length > 0 ? `\nrecently left: ${v.departed.join(", ")}` : "")
  );
}

function statsText(style: Style, nodes: ReturnType<typeof statsView>["nodes"]): string {
  const rows = nodes.map((n) => [
    n.id,
    n.asksPerSec === null ? "-" : n.asksPerSec.toFixed(1),
    ms(n.p50Ms),
    ms(n.p99Ms),
    num(n.mailbox),
    num(n.active),
    num(n.known),
    String(n.owned),
    num(n.handoffsInProgress),
    n.fenced ? red(style, "FENCED") : "no",
  ]);
  return table(
    style,
    ["NODE", "ASKS/S", "P50", "P99", "MAILBOX", "ACTIVE", "KNOWN", "OWNED", "MOVING", "FENCED"],
    rows,
  );
}

function handoffsText(style: Style, v: ReturnType<typeof handoffsView>): string {
  const moving =
    v.inProgress.length === 0
      ? "no hand-offs in progress"
      : table(
          style,
          ["NODE", "PARTITION", "STATE"],
          v.inProgress.map((h) => [h.node, String(h.partition), h.state]),
        );
  const recent =
    v.recent.length === 0
      ? "no recent hand-offs"
      : table(
          style,
          ["NODE", "PARTITION", "FROM", "MS", "RECORDS", "AT"],
          v.recent.map((h) => [
            h.node,
            String(h.partition),
            h.from.join(",") || "-",
            String(Math.round(h.ms)),
            String(h.records),
            new Date(h.at).toISOString(),
          ]),
        );
  return `${bold(style, "In progress")}\n${moving}\n\n${bold(style, "Recent")}\n${recent}`;
}

async function watch(p: Parsed, client: AdminClient, io: Io, style: Style): Promise<number> {
  const intervalMs = intOption("interval", p.values.interval, 1000, 50, 600_000);
  const count = intOption("count", p.values.count, 0, 0, 1_000_000_000);
  const redraw = io.stdout.isTTY === true && !p.json;
  for (let frame = 0; count === 0 || frame < count; frame++) {
    if (frame > 0 && !(await sleep(intervalMs, io.signal))) break;
    let reports: NodeReport[];
    try {
      reports = await client.gather(p.timeoutMs);
    } catch (err) {
      // A live view outlives a blip: say so and keep polling.
      const line = `keyhold: ${(err as Error).message}`;
      if (p.json) json(io, { at: Date.now(), error: line });
      else out(io, `${redraw ? "\x1b[H\x1b[2J" : ""}${new Date().toISOString()} ${red(style, line)}`);
      continue;
    }
    const members = membersView(p.cluster, reports);
    const stats = statsView(reports);
    const handoffs = handoffsView(reports);
    if (p.json) {
      json(io, { at: Date.now(), members, stats, handoffs: { inProgress: handoffs.inProgress } });
      continue;
    }
    const moving =
      handoffs.inProgress.length === 0
        ? "no hand-offs in progress"
        : `hand-offs in progress: ${handoffs.inProgress.map((h) => `${h.partition}@${h.node} (${h.state})`).join(", ")}`;
    out(
      io,
      `${redraw ? "\x1b[H\x1b[2J" : ""}${new Date().toISOString()}  every ${intervalMs} ms${redraw ? ", Ctrl-C to stop" : ""}\n` +
        `${membersText(style, members)}\n\n${statsText(style, stats.nodes)}\n\n${moving}\n`,
    );
  }
  return 0;
}

async function drain(p: Parsed, client: AdminClient, io: Io): Promise<number> {
  const node = p.args[0]!;
  if (!ID_PATTERN.test(node)) throw new UsageError(`NODE must be a node id, got ${JSON.stringify(node)}`);
  const waitMs = intOption("wait", p.values.wait, 30_000, 0, 3_600_000);
  const t0 = Date.now();
  await client.drain(node, p.timeoutMs);
  let left = waitMs === 0;
  while (!left && Date.now() - t0 < waitMs) {
    await sleep(200, io.signal);
    const reports = await client.gather(p.timeoutMs).catch(() => [] as NodeReport[]);
    left = !reports.some((r) => r.id === node || r.members.includes(node));
  }
  const result = { node, draining: true, left, ms: Date.now() - t0 };
  if (p.json) json(io, result);
  else
    out(
      io,
      waitMs === 0
        ? `${node}: draining`
        : left
          ? `${node}: left the cluster after ${result.ms} ms`
          : `${node}: draining, still a member after ${waitMs} ms`,
    );
  return left || waitMs === 0 ? 0 : 1;
}

/** Sleeps `ms`; resolves false when `signal` aborted first. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function untilAborted(signal?: AbortSignal): Promise<void> {
  if (!signal) return new Promise(() => {});
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}
