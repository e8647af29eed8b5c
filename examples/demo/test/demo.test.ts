// Runs `npm run demo`'s program in quick mode as its own process and checks that it exits
// cleanly after showing the killed node dropped and its partitions taken over.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));

function run(entry: string, env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=@keyhold/source", "--import", "tsx", entry], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

it("kills a node and shows its partitions moving to the survivors (DEMO_QUICK=1)", async () => {
  const { code, out } = await run("examples/demo/src/main.ts", { DEMO_QUICK: "1" });
  expect(out, out).toContain("lease: heartbeat 100 ms, ttl 300 ms");
  for (const id of ["node-1", "node-2", "node-3"])
    expect(out).toMatch(new RegExp(`${id} owns +\\d+ partitions`));
  expect(out).toMatch(/kill -9 node-2 \(pid \d+\), which owns (\d+) partitions/);
  expect(out).toMatch(/node-1 dropped node-2 \d+ ms after the kill/);
  expect(out).toMatch(/node-3 dropped node-2 \d+ ms after the kill/);
  // The two "to node-N" lines account for every partition node-2 owned.
  const owned = Number(/which owns (\d+) partitions/.exec(out)?.[1]);
  const gained = [...out.matchAll(/ {2}to node-[13]: (\d+) partitions/g)].map((m) => Number(m[1]));
  expect(gained).toHaveLength(2);
  expect(gained.reduce((a, b) => a + b, 0)).toBe(owned);
  expect(out).toContain("ok: the surviving nodes' partitions tile the ring");
  expect(code, out).toBe(0);
});
