// Every failure the `keyhold` command reports: one class each, with a stable code
// (docs/reference/errors.md). Each ends the command with one line on stderr and exit code 1.
import { KeyholdError } from "@keyhold/core";

/** Stable error codes of @keyhold/cli. */
export const CliErrorCode = {
  Usage: "KH_CLI_USAGE",
  Connect: "KH_CLI_CONNECT",
  NoAnswer: "KH_CLI_NO_ANSWER",
  DrainRefused: "KH_CLI_DRAIN_REFUSED",
  HashVersion: "KH_CLI_HASH_VERSION",
} as const;
export type CliErrorCode = (typeof CliErrorCode)[keyof typeof CliErrorCode];

/** Wrong command line: unknown command or option, missing or invalid argument. */
export class UsageError extends KeyholdError {
  constructor(message: string) {
    super(CliErrorCode.Usage, message);
    this.name = "UsageError";
  }
}

/** The NATS server could not be reached or refused the credentials. */
export class ConnectError extends KeyholdError {
  constructor(servers: readonly string[], options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? options.cause.message : String(options?.cause ?? "");
    super(CliErrorCode.Connect, `cannot connect to ${servers.join(",")}: ${why}`, options);
    this.name = "ConnectError";
  }
}

/** No node of the cluster answered the admin request before the deadline. */
export class NoAnswerError extends KeyholdError {
  readonly cluster: string;
  constructor(cluster: string, what: string) {
    super(CliErrorCode.NoAnswer, `no node of cluster "${cluster}" answered ${what}`);
    this.name = "NoAnswerError";
    this.cluster = cluster;
  }
}

/** The node refused to drain (started without `admin.allowDrain`); `reason` is its code. */
export class DrainRefusedError extends KeyholdError {
  readonly node: string;
  readonly reason: string;
  constructor(node: string, reason: string, message: string) {
    super(CliErrorCode.DrainRefused, `drain of ${node} refused: ${message} (${reason})`);
    this.name = "DrainRefusedError";
    this.node = node;
    this.reason = reason;
  }
}

/** The cluster places keys with a hash this CLI does not implement, so it cannot answer place/owners. */
export class HashVersionError extends KeyholdError {
  constructor(theirs: string, ours: string) {
    super(
      CliErrorCode.HashVersion,
      `the cluster uses hash ${theirs}; this keyhold implements ${ours} and cannot compute placement`,
    );
    this.name = "HashVersionError";
  }
}
