// Runs the membership example the way a user would, as its own process, and checks that it
// exits cleanly and shows the leaving node's partitions moving to the two that stay.
import { fileURLToPath } from "node:url";
import { runTsProgram } from "@keyhold/testing";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));

it("prints the ring and moves only the closed node's partitions", async () => {
  const { code, out } = await runTsProgram("examples/membership/src/main.ts", {
    cwd: root,
    timeoutMs: 45_000,
  });
  expect(out, out).toMatch(/node-a owns +\d+:/);
  expect(out).toMatch(/node-c owns +\d+:/);
  expect(out).toContain("all three nodes agree on every owner: true");
  // node-c's partitions went to the two survivors, and each survivor reported acquiring them.
  const moved = [...out.matchAll(/moved (\d+) to (node-[ab]):/g)];
  expect(moved.map((m) => m[2]).sort()).toEqual(["node-a", "node-b"]);
  const owned = Number(/closing node-c gracefully \(it owns (\d+) partitions\)/.exec(out)?.[1]);
  expect(moved.reduce((n, m) => n + Number(m[1]), 0)).toBe(owned);
  expect(out).toMatch(/node-a acquired \d+:/);
  expect(out).toMatch(/node-c released \d+:/);
  expect(out).toContain("partitions that moved between the two survivors: 0");
  expect(out).toContain("ok: only the leaving node's partitions moved");
  expect(code, out).toBe(0);
});
