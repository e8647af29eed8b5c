// Runs the counter example as a user would and checks what it prints.
import { fileURLToPath } from "node:url";
import { runTsProgram } from "@keyhold/testing";
import { expect, it } from "vitest";

it("the counter example runs, loses nothing across a graceful leave, and exits 0", async () => {
  const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
  const { code, out } = await runTsProgram(main, { timeoutMs: 60_000 });
  expect(code, out).toBe(0);
  expect(out).toMatch(/members: node-a, node-b, node-c/);
  expect(out).toMatch(/handler error: KH_HANDLER_FAILED RangeError: cannot add NaN/);
  expect(out).toMatch(/sum of counters: 200 \(sent 200\)/);
  expect(out.trim().endsWith("ok")).toBe(true);
});
