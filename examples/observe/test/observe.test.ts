// Runs the OpenTelemetry example as a user would and checks the trace and metrics it prints.
import { fileURLToPath } from "node:url";
import { runTsProgram } from "@keyhold/testing";
import { expect, it } from "vitest";

it("the observe example shows one trace across client and node, and the node metrics", async () => {
  const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
  const { code, out } = await runTsProgram(main, { timeoutMs: 60_000 });
  expect(code, out).toBe(0);
  expect(out).toMatch(/^ {2}CLIENT counter\/add key=user-\d+$/m);
  expect(out).toMatch(/^ {4}SERVER counter\/add key=user-\d+$/m);
  expect(out).toMatch(/^ {6}INTERNAL keyhold\.activate key=user-\d+$/m);
  expect(out).toMatch(/every SERVER span has its CLIENT span as parent: true/);
  expect(out).toMatch(/^metric rpc\.client\.call\.duration = 20$/m);
  expect(out).toMatch(/^metric keyhold\.members = [1-9]/m);
  expect(out).toMatch(/^metric keyhold\.entity\.activations = [1-9]/m);
  expect(out.trim().endsWith("ok")).toBe(true);
});
