// A write a replica refused (its view lagged: it still named the old primary) leaves the
// entity's state holding that write on the primary (durability.ts keeps it, in case the primary
// is the owner after all). The caller retries with the same id, and the retry finds the ask in
// the entity's recent asks: it must not be acknowledged before a write of that state reached the
// quorum. Before the fix (slots.ts `unconfirmed`, commit.ts `after`), it was answered at once;
// the primary was then cut off, the next owner pulled the replicas that answered and served
// the key without the acknowledged write. Found by a random search of stalls and cuts on the
// simulated bus (helper fail3's short-fence property); both scenarios fail without the fix.
import { describe, it } from "vitest";
import { type Op, scenario } from "./stall-scenario.js";

const asks = (n: number, from: number): Op => ({ op: "asks", n, from });

describe("a retried ask after a refused write (simulated bus)", () => {
  it("is acknowledged only once its state is durable: n2 stalls while n0 is cut off, then n0 stalls while n1 is cut off (io-first)", async () => {
    await scenario(
      [
        { op: "stall", i: 2, ms: 180, lag: 0, cut: 0 },
        asks(1, 27),
        { op: "stall", i: 0, ms: 172, lag: 58, cut: 1 },
      ],
      1,
      "io-first",
    );
  }, 120_000);

  it("is acknowledged only once its state is durable: stalls, cuts and stray pulls (timers-first)", async () => {
    await scenario(
      [
        { op: "stall", i: 0, ms: 180, lag: 0, cut: null },
        { op: "cut", i: 2, ms: 249 },
        asks(2, 5),
        { op: "pull", i: 0, p: 0 },
        { op: "stall", i: 1, ms: 52, lag: 64, cut: null },
        { op: "stall", i: 2, ms: 180, lag: 37, cut: 1 },
        { op: "pull", i: 0, p: 0 },
      ],
      771945336,
      "timers-first",
    );
  }, 120_000);
});
