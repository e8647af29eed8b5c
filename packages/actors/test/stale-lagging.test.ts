// A `stale` answer gives a partition up unless it only shows that the replica's view lags ours
// (host.ts staleFromLaggingView): after a crash, a replica that has not dropped the dead node yet
// refuses the new owner's copies as "not the primary", naming the dead node. Giving the partition
// up then left it unserved while its take-back waited, pre-fence, for the dead node (the SIGKILL
// failover of `npm run bench -- replication`, bench/replication/failover-only.ts).
import { describe, expect, it } from "vitest";
import { staleFromLaggingView } from "../src/host.js";

const members = ["a", "b"];

describe("staleFromLaggingView", () => {
  it("refused copy by copy, naming a primary our view has dropped: the replica's view lags", () => {
    expect(staleFromLaggingView("a", members, 100, undefined, "dead")).toBe(true);
  });

  it("refused by an epoch floor at or below our tenure's: a copy of an older tenure", () => {
    expect(staleFromLaggingView("a", members, 100, 100, "a")).toBe(true);
    expect(staleFromLaggingView("a", members, 100, 40, "b")).toBe(true);
  });

  it("an epoch floor above our tenure's: someone took the partition after us, give it up", () => {
    expect(staleFromLaggingView("a", members, 100, 101, "dead")).toBe(false);
    expect(staleFromLaggingView("a", members, 100, 101, "a")).toBe(false);
  });

  it("not serving (no tenure): nothing to keep", () => {
    expect(staleFromLaggingView("a", members, 0, 0, "dead")).toBe(false);
  });

  it("a primary that is a member in our view: another live node claims it, give it up", () => {
    expect(staleFromLaggingView("a", members, 100, undefined, "b")).toBe(false);
  });

  it("the replica names us (it holds a newer version than ours) or nobody: give it up", () => {
    expect(staleFromLaggingView("a", members, 100, undefined, "a")).toBe(false);
    expect(staleFromLaggingView("a", members, 100, undefined, null)).toBe(false);
  });
});
