// `npx keyhold` from the workspace: the bin launcher runs the TypeScript source (no dist/ is
// built in the workspace) and passes the exit code through.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { NatsServer } from "@keyhold/testing";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function npx(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      "npx",
      ["--no-install", "keyhold", ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("npx keyhold", () => {
  it("prints help and exits 0", async () => {
    const r = await npx(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: keyhold COMMAND \[ARGS\] \[options\]/);
  });

  it("exits 1 with one line on stderr when no node answers", async () => {
    await using srv = await NatsServer.start();
    const r = await npx(["health", "--timeout", "300"], { NATS_URL: srv.url, KEYHOLD_CLUSTER: "empty" });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe('keyhold: no node of cluster "empty" answered a status request within 300 ms\n');
  });
});
