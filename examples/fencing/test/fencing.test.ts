// Runs the fencing example as a user would and checks what it prints.
import { fileURLToPath } from "node:url";
import { runTsProgram } from "@keyhold/testing";
import { expect, it } from "vitest";

it("the fencing example: the token rises across owners and the ledger refuses the old owner's late call", async () => {
  const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
  const { code, out } = await runTsProgram(main, { timeoutMs: 60_000 });
  expect(code, out).toBe(0);
  expect(out).toMatch(/on node-a: charged 10 with token \d+/);
  expect(out).toMatch(/on node-b: charged 15 with token \d+/);
  expect(out).toMatch(/token rose across the change of owner: true/);
  expect(out).toMatch(/late call from node-a refused: token \d+ < \d+ already seen for acct-\d+/);
  expect(out.trim().endsWith("ok")).toBe(true);
});
