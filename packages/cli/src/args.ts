// Argument parsing (node:util parseArgs, no dependency) and option validation: every bad
// argument is a UsageError naming the option and the value.
import { parseArgs } from "node:util";
import { ID_PATTERN } from "@keyhold/core";
import type { ConnectOptions } from "./client.js";
import {
  COMMANDS,
  commandOptions,
  DEFAULT_SERVER,
  DEFAULT_TIMEOUT_MS,
  globalOptions,
  helpText,
} from "./commands.js";
import { UsageError } from "./errors.js";
import type { Io } from "./output.js";

/** Dot-separated subject tokens, no wildcards or spaces. */
const INBOX_PREFIX = /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$/;

export interface Parsed {
  readonly command: string;
  readonly args: readonly string[];
  readonly connect: ConnectOptions;
  readonly cluster: string;
  readonly timeoutMs: number;
  readonly json: boolean;
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
}

export function intOption(
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

export function parseArgv(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: ALL_OPTIONS,
    allowPositionals: true,
    strict: true,
    tokens: true,
  });
}

/** Parses argv; returns undefined after printing help. */
export function parse(argv: readonly string[], io: Io): Parsed | undefined {
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
