// Runs the counter example as a user would and checks what it prints.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, it } from "vitest";

it("the counter example runs, loses nothing across a graceful leave, and exits 0", async () => {
  const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
  const env = { ...process.env };
  delete env.NATS_URL;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--conditions=@keyhold/source", "--import", "tsx", main],
    { env, timeout: 60_000 },
  );
  expect(stdout).toMatch(/members: node-a, node-b, node-c/);
  expect(stdout).toMatch(/handler error: KH_HANDLER_FAILED RangeError: cannot add NaN/);
  expect(stdout).toMatch(/sum of counters: 200 \(sent 200\)/);
  expect(stdout.trim().endsWith("ok")).toBe(true);
});
