// Runs `npm run demo`'s program in quick mode as its own process, as CI does, and checks the
// report: hardly any failed asks through a join, a graceful leave and a SIGKILL; replicated
// counters all intact, plain ones intact unless they lived on the killed node.
import { fileURLToPath } from "node:url";
import { runTsProgram } from "@keyhold/testing";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));

it("runs the demo cluster through join, graceful leave and SIGKILL without losing what it promises", async () => {
  const { code, out } = await runTsProgram("examples/demo/src/main.ts", {
    cwd: root,
    env: { DEMO_QUICK: "1" },
  });
  expect(code, out).toBe(0);
  expect(out).toContain("(embedded nats-server)");
  expect(out).toMatch(/node-4 joins .*partitions: node-1 \d+, node-2 \d+, node-3 \d+, node-4 \d+/);
  expect(out).toMatch(/hand-off: .*node-4 took \d+ partitions/);
  expect(out).toMatch(
    /node-2 leaves gracefully: membership settled in \d+ ms; partitions: node-1 \d+, node-3 \d+, node-4 \d+/,
  );
  expect(out).toMatch(/node-3 is killed with SIGKILL: membership settled/);
  const sent = /asks sent (\d+), acknowledged (\d+), failed (\d+)/.exec(out);
  expect(sent, out).not.toBeNull();
  expect(Number(sent![1])).toBeGreaterThan(1000);
  // Failed asks are allowed (a replica slow to acknowledge on a loaded machine fails a write
  // with a retryable QuorumError), but they must stay rare.
  expect(Number(sent![3])).toBeLessThanOrEqual(Number(sent![1]) / 100);
  expect(out).toMatch(/counters checked 1000: \d+ exact, 0 lost increments/);
  expect(out).toMatch(/\d+ replicated counters lived on node-3: all checked/);
  expect(out).toContain(
    "ok: every replicated counter, and every plain counter not on the killed node, holds all",
  );
}, 120_000);
