// Failures the fault-testing kit of @keyhold/testing raises on purpose, each with a stable code
// (documented in docs/reference/errors.md). Invalid options raise @keyhold/core's InvalidOptionError.
import { KeyholdError } from "@keyhold/core";

/** Stable error codes of @keyhold/testing. */
export const TestingErrorCode = {
  InvalidHistory: "KH_INVALID_HISTORY",
  Timeout: "KH_TEST_TIMEOUT",
} as const;
export type TestingErrorCode = (typeof TestingErrorCode)[keyof typeof TestingErrorCode];

/**
 * A history the checker or a parser cannot read: a malformed Jepsen log line (`line` set), or
 * an operation a model does not know or whose input has the wrong shape (`opId` set).
 */
export class InvalidHistoryError extends KeyholdError {
  readonly line: number | undefined;
  readonly opId: number | undefined;
  constructor(message: string, where: { line?: number; opId?: number } = {}) {
    super(
      TestingErrorCode.InvalidHistory,
      where.line !== undefined
        ? `line ${where.line}: ${message}`
        : where.opId !== undefined
          ? `${message} (op ${where.opId})`
          : message,
    );
    this.name = "InvalidHistoryError";
    this.line = where.line;
    this.opId = where.opId;
  }
}

/**
 * A TestCluster wait ran out: `converge()` (the views it saw are in the message) or a call
 * driven for DEFAULT_TEST_DRIVE_LIMIT_MS of virtual time without settling.
 */
export class TestClusterTimeoutError extends KeyholdError {
  constructor(message: string) {
    super(TestingErrorCode.Timeout, message);
    this.name = "TestClusterTimeoutError";
  }
}
