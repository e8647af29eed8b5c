// Runs the fault-testing example as a user would and checks that it produced its report.
import { fileURLToPath } from "node:url";
import { runTsProgram } from "@keyhold/testing";
import { expect, it } from "vitest";

it("the fault-testing example runs its faults, checks what it recorded and exits 0", async () => {
  const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
  const { code, out } = await runTsProgram(main, { timeoutMs: 120_000 });
  expect(code, out).toBe(0);
  expect(out).toMatch(/3 nodes on 3 servers/);
  expect(out).toMatch(/node 2 paused \(SIGSTOP\)/);
  expect(out).toMatch(/operations: \d+ \(ok [1-9]\d*, fail \d+, unknown \d+\)/);
  expect(out).toMatch(/linearizability: (linearizable|not-linearizable|unknown) \(8 keys/);
  expect(out).toMatch(/acknowledgements: [1-9]\d* from [23] nodes; keys with two owners at once: \d+/);
  expect(out).toMatch(/acknowledged writes provably lost: \d+/);
  expect(out.trim().endsWith("ok")).toBe(true);
}, 150_000);
