// Entry point of the `keyhold` binary (bin/keyhold.js runs this, built or from source).
import { run } from "./cli.js";

const controller = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => controller.abort());
process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: controller.signal,
});
// Open handles (a reconnecting socket) must not keep a finished command alive.
process.exit();
