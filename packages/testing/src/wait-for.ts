// Polling helper for tests: wait until a condition holds, or fail with a readable message.
// Generic on purpose; the nats helpers use it and so can any other test.

export interface WaitForOptions {
  /** Give up after this many milliseconds. Default 10 000. */
  timeout?: number;
  /** Pause between checks in milliseconds. Default 25. */
  interval?: number;
  /** Message of the Error thrown on timeout. */
  message?: string;
}

/**
 * Calls `predicate` until it returns (or resolves to) true; rejects with `message` after `timeout`.
 * A predicate that throws counts as "not yet" (e.g. a port that does not accept connections yet);
 * the last such error becomes the timeout Error's `cause` so a real bug in the predicate stays visible.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeout = 10_000, interval = 25, message }: WaitForOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeout;
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const text = message ?? `waitFor: condition not met within ${timeout} ms`;
      throw lastError === undefined ? new Error(text) : new Error(text, { cause: lastError });
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
