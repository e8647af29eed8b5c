// jetstream-ready.ts on a virtual clock: how often and how long a JetStream API is asked before
// its silence is taken as "no JetStream", and which errors are answers that end the asking.
import { askUntilReady, isJetStreamAnswer, JETSTREAM_READY_MS, JETSTREAM_RETRY_MS } from "@keyhold/core";
import { VirtualClock } from "@keyhold/testing";
import { JetStreamApiError } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";

/** An attempt that fails `failures` times (with `err`), then succeeds; records when it was asked. */
function flaky(clock: VirtualClock, failures: number, err: unknown = new Error("timeout")) {
  const at: number[] = [];
  const attempt = async () => {
    at.push(clock.monoNow());
    if (at.length <= failures) throw err;
  };
  return { at, attempt };
}

async function settle(clock: VirtualClock, p: Promise<unknown>): Promise<unknown> {
  let done = false;
  let result: unknown;
  void p.then((r) => {
    done = true;
    result = r;
  });
  for (let i = 0; !done && i < 1000; i++) await clock.advance(100);
  expect(done).toBe(true);
  return result;
}

describe("askUntilReady", () => {
  it("asks again, JETSTREAM_RETRY_MS apart, until the attempt succeeds", async () => {
    const clock = new VirtualClock();
    const t0 = clock.monoNow();
    const { at, attempt } = flaky(clock, 3);
    const err = await settle(clock, askUntilReady(attempt, { clock, readyMs: JETSTREAM_READY_MS }));
    expect(err).toBeUndefined();
    expect(at.map((t) => t - t0)).toEqual([0, 1, 2, 3].map((i) => i * JETSTREAM_RETRY_MS));
  });

  it("gives up with the last error once no further ask fits in readyMs", async () => {
    const clock = new VirtualClock();
    const t0 = clock.monoNow();
    const last = new Error("JetStream system temporarily unavailable");
    const { at, attempt } = flaky(clock, Number.POSITIVE_INFINITY, last);
    const err = await settle(clock, askUntilReady(attempt, { clock, readyMs: JETSTREAM_READY_MS }));
    expect(err).toBe(last);
    expect(at.length).toBe(JETSTREAM_READY_MS / JETSTREAM_RETRY_MS + 1);
    expect(at.at(-1)! - t0).toBe(JETSTREAM_READY_MS);
  });

  it("asks once when readyMs is 0, and stops at once on a final error", async () => {
    const clock = new VirtualClock();
    const once = flaky(clock, 1);
    expect(await settle(clock, askUntilReady(once.attempt, { clock, readyMs: 0 }))).toBeInstanceOf(Error);
    expect(once.at.length).toBe(1);
    const refused = new Error("Permissions Violation for Publish to $JS.API.INFO");
    const final = flaky(clock, 5, refused);
    const err = await settle(
      clock,
      askUntilReady(final.attempt, { clock, readyMs: JETSTREAM_READY_MS, isFinal: isJetStreamAnswer }),
    );
    expect(err).toBe(refused);
    expect(final.at.length).toBe(1);
  });
});

describe("isJetStreamAnswer", () => {
  it("takes a refusal for an answer and silence for none", () => {
    const notEnabled = new JetStreamApiError({
      code: 503,
      err_code: 10039,
      description: "JetStream not enabled for account",
    });
    // nats.js wraps it so; "no responders" gets the same wrapper with another cause.
    expect(isJetStreamAnswer(new Error("wrapped", { cause: notEnabled }))).toBe(true);
    expect(isJetStreamAnswer(new Error("Permissions Violation for Publish to $JS.API.INFO"))).toBe(true);
    const unavailable = new JetStreamApiError({
      code: 503,
      err_code: 10008,
      description: "JetStream system temporarily unavailable",
    });
    expect(isJetStreamAnswer(unavailable)).toBe(false);
    expect(isJetStreamAnswer(new Error("jetstream is not enabled", { cause: new Error("503") }))).toBe(false);
    expect(isJetStreamAnswer(new Error("TIMEOUT"))).toBe(false);
  });
});
