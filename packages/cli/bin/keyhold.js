#!/usr/bin/env node
// The `keyhold` command. A packed package runs its built dist/; in the Keyhold workspace (no
// dist/ built) it runs the TypeScript source through tsx with the @keyhold/source condition,
// the way every example and test of the repository runs.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dist = new URL("../dist/main.js", import.meta.url);
if (existsSync(fileURLToPath(dist))) {
  await import(dist.href);
} else {
  const src = fileURLToPath(new URL("../src/main.ts", import.meta.url));
  let tsx;
  try {
    tsx = import.meta.resolve("tsx");
  } catch {
    console.error("keyhold: no dist/ build and no tsx to run the source; run `npm run build` first");
    process.exit(1);
  }
  const child = spawn(
    process.execPath,
    ["--conditions=@keyhold/source", "--import", tsx, src, ...process.argv.slice(2)],
    { stdio: "inherit" },
  );
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
  child.on("exit", (code, signal) => {
    process.exitCode = code ?? (signal ? 1 : 0);
  });
}
