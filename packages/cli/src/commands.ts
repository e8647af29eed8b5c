// The commands `keyhold` knows, the options each takes, and the help texts built from them.

export const DEFAULT_SERVER = "nats://127.0.0.1:4222";
export const DEFAULT_TIMEOUT_MS = 2000;
export const globalOptions = {
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

export const commandOptions = {
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

export const COMMANDS: Readonly<Record<string, Command>> = {
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
