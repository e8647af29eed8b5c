// TEMPORARY instrumentation (issue 10 measurement); removed before the last commit.
import { appendFileSync } from "node:fs";
const file = process.env.KH_TRACE;
export function trace(node: string, msg: string): void {
  if (file) appendFileSync(file, `${Date.now()} ${node} ${msg}\n`);
}
