// Every failure @keyhold/actors can raise: one class each with a stable code, and the mapping
// that turns an error carried over the wire back into the same class on the caller's side.
import { KeyholdError, show } from "@keyhold/core";

/** Stable error codes of @keyhold/actors; documented in docs/reference/errors.md. */
export const ActorErrorCode = {
  HandlerFailed: "KH_HANDLER_FAILED",
  UnknownEntityType: "KH_UNKNOWN_ENTITY_TYPE",
  UnknownHandler: "KH_UNKNOWN_HANDLER",
  NotSerializable: "KH_NOT_SERIALIZABLE",
  DeadlineExceeded: "KH_DEADLINE_EXCEEDED",
  NoLiveMember: "KH_NO_LIVE_MEMBER",
  MailboxFull: "KH_MAILBOX_FULL",
  Aborted: "KH_ABORTED",
  InvalidRequest: "KH_INVALID_REQUEST",
  InvalidEntity: "KH_INVALID_ENTITY",
  ShardingClosed: "KH_SHARDING_CLOSED",
  QuorumUnavailable: "KH_QUORUM_UNAVAILABLE",
  StoreFailed: "KH_STORE_FAILED",
  StoreConflict: "KH_STORE_CONFLICT",
  InvalidReminder: "KH_INVALID_REMINDER",
  InvalidArguments: "KH_INVALID_ARGUMENTS",
  TelemetryUnavailable: "KH_TELEMETRY_UNAVAILABLE",
  NotOwner: "KH_NOT_OWNER",
  ReadOnlyState: "KH_READ_ONLY_STATE",
  EpochUnavailable: "KH_EPOCH_UNAVAILABLE",
} as const;
export type ActorErrorCode = (typeof ActorErrorCode)[keyof typeof ActorErrorCode];

/** Where a failed ask was headed, for diagnostics. */
export interface ErrorTarget {
  readonly type: string;
  readonly key: string;
  readonly handler: string;
}

/** Base of every @keyhold/actors error. `retryable` says whether the same ask may succeed later. */
export class ActorError extends KeyholdError {
  readonly retryable: boolean;
  constructor(code: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ActorError";
    this.retryable = options.retryable ?? false;
  }
}

/** The entity's handler threw. `remoteName` is the thrown error's name, `remoteStack` its stack when it was thrown on this node. */
export class HandlerError extends ActorError {
  readonly remoteName: string;
  readonly details: unknown;
  constructor(message: string, remoteName = "Error", details?: unknown) {
    super(ActorErrorCode.HandlerFailed, message);
    this.name = "HandlerError";
    this.remoteName = remoteName;
    this.details = details;
  }
}

export class UnknownEntityTypeError extends ActorError {
  constructor(type: string) {
    super(ActorErrorCode.UnknownEntityType, `No entity type ${show(type)} is registered on the owning node`);
    this.name = "UnknownEntityTypeError";
  }
}

export class UnknownHandlerError extends ActorError {
  constructor(type: string, handler: string) {
    super(ActorErrorCode.UnknownHandler, `Entity type ${show(type)} has no handler ${show(handler)}`);
    this.name = "UnknownHandlerError";
  }
}

export class NotSerializableError extends ActorError {
  constructor(what: string, path: string, reason: string) {
    super(ActorErrorCode.NotSerializable, `Cannot send ${what}: ${path} is ${reason}`);
    this.name = "NotSerializableError";
  }
}

export class DeadlineExceededError extends ActorError {
  constructor(target: ErrorTarget, timeoutMs: number, lastProblem?: string) {
    super(
      ActorErrorCode.DeadlineExceeded,
      `No answer from ${target.type}/${target.key}.${target.handler} within ${timeoutMs} ms` +
        (lastProblem ? ` (last attempt: ${lastProblem})` : ""),
      { retryable: true },
    );
    this.name = "DeadlineExceededError";
  }
}

export class NoLiveMemberError extends ActorError {
  constructor(target: ErrorTarget, timeoutMs: number) {
    super(
      ActorErrorCode.NoLiveMember,
      `No live member to handle ${target.type}/${target.key}.${target.handler} for ${timeoutMs} ms: the cluster has no nodes, or this process is cut off from NATS`,
      { retryable: true },
    );
    this.name = "NoLiveMemberError";
  }
}

export class MailboxFullError extends ActorError {
  constructor(type: string, key: string, capacity: number) {
    super(
      ActorErrorCode.MailboxFull,
      `The mailbox of ${type}/${key} is full (${capacity} messages); retry later`,
      {
        retryable: true,
      },
    );
    this.name = "MailboxFullError";
  }
}

export class AbortedError extends ActorError {
  constructor(reason?: unknown) {
    super(ActorErrorCode.Aborted, "The ask was aborted", { cause: reason });
    this.name = "AbortedError";
  }
}

export class InvalidRequestError extends ActorError {
  constructor(message: string) {
    super(ActorErrorCode.InvalidRequest, message);
    this.name = "InvalidRequestError";
  }
}

/** An entity class that cannot be registered (no static type, duplicate type, no handlers). */
export class InvalidEntityError extends ActorError {
  constructor(message: string) {
    super(ActorErrorCode.InvalidEntity, message);
    this.name = "InvalidEntityError";
  }
}

/** One problem an argument schema found: what is wrong, and where (argument index first). */
export interface ArgumentIssue {
  readonly message: string;
  readonly path: readonly (string | number)[];
}

/**
 * A handler's arguments failed its schema (`static schemas`), on the owner (the trust boundary)
 * or early on a client that has the class. The handler did not run.
 */
export class InvalidArgumentsError extends ActorError {
  readonly type: string;
  readonly handler: string;
  readonly issues: readonly ArgumentIssue[];
  constructor(type: string, handler: string, issues: readonly ArgumentIssue[]) {
    const list = issues
      .slice(0, 3)
      .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
      .join("; ");
    super(
      ActorErrorCode.InvalidArguments,
      `Invalid arguments for ${type}.${handler}: ${list}${issues.length > 3 ? ` (and ${issues.length - 3} more)` : ""}`,
    );
    this.name = "InvalidArgumentsError";
    this.type = type;
    this.handler = handler;
    this.issues = issues;
  }
}

/** The issues of a wire error's details, keeping only well-formed ones (a peer may send anything). */
function wireIssues(details: unknown): ArgumentIssue[] {
  if (!Array.isArray(details)) return [];
  const out: ArgumentIssue[] = [];
  for (const d of details.slice(0, 100)) {
    if (typeof d !== "object" || d === null) continue;
    const { message, path } = d as { message?: unknown; path?: unknown };
    if (typeof message !== "string") continue;
    const segs = Array.isArray(path)
      ? path.filter((x): x is string | number => typeof x === "string" || typeof x === "number").slice(0, 32)
      : [];
    out.push({ message: message.slice(0, 1000), path: segs });
  }
  return out;
}

/** `telemetry.enabled` is set but `@opentelemetry/api` cannot be imported (it is not installed). */
export class TelemetryUnavailableError extends ActorError {
  constructor(cause: unknown) {
    super(
      ActorErrorCode.TelemetryUnavailable,
      "telemetry.enabled needs the @opentelemetry/api package: npm install @opentelemetry/api",
      { cause },
    );
    this.name = "TelemetryUnavailableError";
  }
}

export class ShardingClosedError extends ActorError {
  constructor(message = "Sharding is closed") {
    super(ActorErrorCode.ShardingClosed, message);
    this.name = "ShardingClosedError";
  }
}

/** An error as it travels on the wire. */
export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly name?: string | undefined;
  readonly details?: unknown;
  /** Whether the same ask may succeed later (carried for codes the caller has no class for). */
  readonly retryable?: boolean | undefined;
}

export function toWireError(err: unknown): WireError {
  if (err instanceof ActorError) {
    return {
      code: err.code,
      message: err.message,
      name: err instanceof HandlerError ? err.remoteName : err.name,
      retryable: err.retryable,
      ...(err instanceof InvalidArgumentsError ? { details: err.issues } : {}),
    };
  }
  if (err instanceof Error)
    return { code: ActorErrorCode.HandlerFailed, message: err.message, name: err.name };
  return {
    code: ActorErrorCode.HandlerFailed,
    message: `Handler threw a non-error: ${show(err)}`,
    name: "Error",
  };
}

/** Rebuilds the typed error a remote node reported. */
export function fromWireError(e: WireError, target: ErrorTarget): ActorError {
  switch (e.code) {
    case ActorErrorCode.UnknownEntityType:
      return new UnknownEntityTypeError(target.type);
    case ActorErrorCode.UnknownHandler:
      return new UnknownHandlerError(target.type, target.handler);
    case ActorErrorCode.MailboxFull: {
      const err = new ActorError(e.code, e.message, { retryable: true });
      err.name = "MailboxFullError";
      Object.setPrototypeOf(err, MailboxFullError.prototype);
      return err;
    }
    case ActorErrorCode.NotSerializable: {
      const err = new ActorError(e.code, e.message);
      err.name = "NotSerializableError";
      Object.setPrototypeOf(err, NotSerializableError.prototype);
      return err;
    }
    case ActorErrorCode.InvalidRequest:
      return new InvalidRequestError(e.message);
    case ActorErrorCode.InvalidArguments:
      return new InvalidArgumentsError(target.type, target.handler, wireIssues(e.details));
    case ActorErrorCode.QuorumUnavailable:
      return new QuorumError(e.message);
    case ActorErrorCode.StoreFailed:
      return new StoreError(e.message);
    case ActorErrorCode.StoreConflict:
      return new StoreConflictError(target.type, target.key);
    case ActorErrorCode.InvalidReminder:
      return new InvalidReminderError(e.message);
    case ActorErrorCode.NotOwner:
      return new NotOwnerError(target.type, target.key, e.message);
    case ActorErrorCode.ReadOnlyState:
      return new ReadOnlyStateError(target.type, target.handler, e.message);
    case ActorErrorCode.HandlerFailed:
      return new HandlerError(e.message, e.name ?? "Error", e.details);
    case ActorErrorCode.DeadlineExceeded:
    case ActorErrorCode.NoLiveMember:
    case ActorErrorCode.ShardingClosed:
    case ActorErrorCode.Aborted: {
      // Raised inside the remote handler (a nested ask): keep its class name and code.
      const err = new ActorError(e.code, e.message, { retryable: e.retryable === true });
      err.name = e.name ?? "ActorError";
      return err;
    }
    default: {
      const err = new ActorError(e.code, e.message, { retryable: e.retryable === true });
      if (e.name) err.name = e.name;
      return err;
    }
  }
}

/** A replicated write did not reach its write quorum; it may or may not have been applied. */
export class QuorumError extends ActorError {
  constructor(message: string) {
    super(ActorErrorCode.QuorumUnavailable, message, { retryable: true });
    this.name = "QuorumError";
  }
}

/** The durable store failed (unreachable, timed out); the write may not be stored. */
export class StoreError extends ActorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ActorErrorCode.StoreFailed, message, { retryable: true, ...options });
    this.name = "StoreError";
  }
}

/**
 * The store holds a newer revision than this node last saw: another node owns the entity now
 * (or did meanwhile). This node drops its copy; a retry reaches the current owner.
 */
export class StoreConflictError extends ActorError {
  constructor(type: string, key: string) {
    super(
      ActorErrorCode.StoreConflict,
      `The stored state of ${type}/${key} was written by another node since this one loaded it; this node gave the entity up`,
      { retryable: true },
    );
    this.name = "StoreConflictError";
  }
}

/** A reminder that cannot be set: bad name, time, period or payload, or remind() outside a live entity. */
export class InvalidReminderError extends ActorError {
  constructor(message: string) {
    super(ActorErrorCode.InvalidReminder, message);
    this.name = "InvalidReminderError";
  }
}

/**
 * This node may not act as the entity's owner now: its lease lapsed (a pause, a stalled event
 * loop, a cut link), or a replica's view names another primary or holds a newer copy. Between
 * nodes it becomes a "moved" answer and the message is routed again with the same id; a local
 * caller sees it only when its ask had already run (the outcome is then unknown: retry it).
 */
export class NotOwnerError extends ActorError {
  /** False when the message was refused before its handler ran (routing it again is safe). */
  readonly mayHaveApplied: boolean;
  constructor(type: string, key: string, why: string, mayHaveApplied = true) {
    super(ActorErrorCode.NotOwner, `This node may not act for ${type}/${key} now: ${why}`, {
      retryable: true,
    });
    this.name = "NotOwnerError";
    this.mayHaveApplied = mayHaveApplied;
  }
}

/**
 * A handler declared read-only (`static readOnly`) tried to change `this.state`. Nothing was
 * changed: the write was refused before it happened.
 */
export class ReadOnlyStateError extends ActorError {
  readonly type: string;
  readonly handler: string;
  constructor(type: string, handler: string, message?: string) {
    super(
      ActorErrorCode.ReadOnlyState,
      message ??
        `${type}.${handler} is declared read-only (static readOnly) but tried to change this.state; ` +
          "remove it from readOnly or do not write",
    );
    this.name = "ReadOnlyStateError";
    this.type = type;
    this.handler = handler;
  }
}

/**
 * No fencing token could be taken: `epochs: "jetstream"` where the NATS server has no
 * JetStream (at start), or the epoch bucket cannot be written (a NATS partition without the
 * bucket's quorum: the partition is not served until it can be).
 */
export class EpochError extends ActorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ActorErrorCode.EpochUnavailable, message, { retryable: true, ...options });
    this.name = "EpochError";
  }
}
