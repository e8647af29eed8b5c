// Runs the rolling-upgrade example as a user would and checks what it prints.
import { fileURLToPath } from "node:url";
import { runTsProgram } from "@keyhold/testing";
import { expect, it } from "vitest";

it("the upgrade example replaces every node under load, loses nothing, and refuses another protocol", async () => {
  const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
  const { code, out } = await runTsProgram(main, { timeoutMs: 90_000 });
  expect(code, out).toBe(0);
  expect(out).toMatch(/replaced v1-c with v2-c/);
  expect(out).toMatch(/members: (v2-[abc](, )?){3}\n/);
  const m = /acknowledged adds: (\d+), failed asks: (\d+), lost: (\d+), doubled: (\d+)/.exec(out);
  expect(m, out).not.toBeNull();
  expect(Number(m![1])).toBeGreaterThan(0);
  expect(Number(m![3])).toBe(0);
  expect(Number(m![4])).toBe(0);
  expect(out).toMatch(
    /refused at join: wire protocol: ours keyhold-actors\/2, theirs keyhold-actors\/1\+batch/,
  );
  expect(out.trim().endsWith("ok")).toBe(true);
}, 120_000);
