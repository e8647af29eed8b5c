// The counting of the re-acquire pause test (reacquire-loss.ts), on made-up histories: what is
// the documented restart loss, and what is a loss beyond it that the test must report.
import type { Operation } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import type { TallyAck } from "./reacquire-fixtures.js";
import { documentedLoss, type FinalState } from "./reacquire-loss.js";

const VICTIM = 100;
const OTHER = 200;
// pauseAt is read just before the SIGSTOP is sent, resumeAt just before the SIGCONT.
const times = { pauseAt: 1000, pausedAt: 1005, resumeAt: 3000, victimPid: VICTIM };

let id = 0;
function add(op: string, out: TallyAck): Operation {
  return {
    id: id++,
    process: "c0",
    key: "t-1",
    f: "add",
    input: op,
    output: out,
    status: "ok",
    invokedAt: out.at - 1,
    completedAt: out.at + 1,
  };
}

// The victim's lineage "100-1" was replaced by the interim owner's restart "200-1", which the
// victim took back on re-acquire and still served at the end; the final state holds "kept".
const final: FinalState = new Map([["t-1", { n: 1, born: "200-1", ops: ["kept"] }]]);
const lostOnes = (ops: Operation[]) => documentedLoss(ops, final, times).map((o) => o.input);

describe("the documented restart loss of the pause test", () => {
  it("counts an add the victim ran before the SIGSTOP landed, even if after pauseAt was read", () => {
    // The add that made the 3 of issue 8: the old rule (at < pauseAt, whoever ran it) called it
    // lost beyond the restart, though it was part of the state the restart replaced.
    const ops = [
      add("before", { n: 7, born: "100-1", at: 999, pid: VICTIM }),
      add("in-flight", { n: 8, born: "100-1", at: 1002, pid: VICTIM }),
    ];
    expect(lostOnes(ops)).toEqual(["before", "in-flight"]);
  });

  it("never counts a rolled-back add of the interim owner, nor one the victim ran after its resume", () => {
    const ops = [
      // The interim owner's lineage, replaced later: a rollback.
      add("interim", { n: 1, born: "200-0", at: 2000, pid: OTHER }),
      // The victim acting on its old state after the SIGCONT: a second acknowledging owner.
      add("stale-owner", { n: 9, born: "100-1", at: 3001, pid: VICTIM }),
      // Missing from the very lineage the key ends with.
      add("dropped", { n: 2, born: "200-1", at: 2500, pid: OTHER }),
      // Still there: not lost at all.
      add("kept", { n: 1, born: "200-1", at: 2400, pid: OTHER }),
    ];
    expect(lostOnes(ops)).toEqual([]);
  });

  it("counts an add another node acknowledged before the pause in the victim's lineage", () => {
    // Handed to the victim gracefully before the pause, then lost with the victim's state.
    expect(lostOnes([add("handed", { n: 3, born: "200-0", at: 500, pid: OTHER })])).toEqual(["handed"]);
  });
});
