// Every failure @keyhold/core can raise: one class each, with a stable code.

/** Stable error codes of @keyhold/core; documented in docs/reference/errors.md. */
export const CoreErrorCode = {
  InvalidOption: "KH_INVALID_OPTION",
  ConfigMismatch: "KH_CONFIG_MISMATCH",
  DuplicateNodeId: "KH_DUPLICATE_NODE_ID",
  StartTimeout: "KH_START_TIMEOUT",
  Closed: "KH_CLOSED",
  InvalidArgument: "KH_INVALID_ARGUMENT",
  JetStreamUnavailable: "KH_JETSTREAM_UNAVAILABLE",
} as const;
export type CoreErrorCode = (typeof CoreErrorCode)[keyof typeof CoreErrorCode];

/** Base class of Keyhold errors: a stable `code`, optional `cause`. */
export class KeyholdError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KeyholdError";
    this.code = code;
  }
}

/** An option failed validation; names the option, the rule and the value. */
export class InvalidOptionError extends KeyholdError {
  readonly option: string;
  readonly value: unknown;
  constructor(option: string, rule: string, value: unknown) {
    super(CoreErrorCode.InvalidOption, `Expected \`${option}\` to be ${rule}, got ${show(value)}`);
    this.name = "InvalidOptionError";
    this.option = option;
    this.value = value;
  }
}

/** One setting that differs between this node and a running cluster member. */
export interface ConfigDifference {
  readonly setting: string;
  readonly ours: unknown;
  readonly theirs: unknown;
}

/** The running cluster uses a different ring size, lease timing or hash version. */
export class ConfigMismatchError extends KeyholdError {
  readonly peer: string;
  readonly differences: readonly ConfigDifference[];
  constructor(peer: string, differences: readonly ConfigDifference[]) {
    const list = differences
      .map((d) => `${d.setting} is ${show(d.ours)} here but ${show(d.theirs)}`)
      .join("; ");
    super(
      CoreErrorCode.ConfigMismatch,
      `Refusing to join: cluster member ${peer} runs a different config: ${list}. ` +
        "ringSize, heartbeatMs, ttlMs, skewMs, the lease mode (`leases`), the hash version, the wire protocol and the fencing tokens (`epochs`) must be identical on every node.",
    );
    this.name = "ConfigMismatchError";
    this.peer = peer;
    this.differences = differences;
  }
}

/** Another live member already uses this node id. */
export class DuplicateNodeIdError extends KeyholdError {
  readonly nodeId: string;
  constructor(nodeId: string, ttlMs: number) {
    super(
      CoreErrorCode.DuplicateNodeId,
      `Refusing to join: node id ${JSON.stringify(nodeId)} is already live in the cluster. ` +
        `Use another id, or, if it is this node's previous incarnation, wait ${ttlMs} ms for its lease to expire.`,
    );
    this.name = "DuplicateNodeIdError";
    this.nodeId = nodeId;
  }
}

/** start() did not see its own heartbeat come back through NATS in time. */
export class StartTimeoutError extends KeyholdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(CoreErrorCode.StartTimeout, message, options);
    this.name = "StartTimeoutError";
  }
}

/** `leases: "jetstream"` was asked for, but the NATS account offers no JetStream (or the stream could not be made). */
export class JetStreamUnavailableError extends KeyholdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(CoreErrorCode.JetStreamUnavailable, message, options);
    this.name = "JetStreamUnavailableError";
  }
}

/** The node was closed. */
export class ClosedError extends KeyholdError {
  constructor(message = "The node is closed") {
    super(CoreErrorCode.Closed, message);
    this.name = "ClosedError";
  }
}

/** A method was called with an argument it cannot use (a key that is not a string or bytes, a negative count). */
export class InvalidArgumentError extends KeyholdError {
  readonly argument: string;
  readonly value: unknown;
  constructor(argument: string, rule: string, value: unknown) {
    super(CoreErrorCode.InvalidArgument, `Expected \`${argument}\` to be ${rule}, got ${show(value)}`);
    this.name = "InvalidArgumentError";
    this.argument = argument;
    this.value = value;
  }
}

/** A short, safe rendering of a value for error messages. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  if (Array.isArray(value)) return `array(${value.length})`;
  return `object ${value.constructor?.name ?? "Object"}`;
}
