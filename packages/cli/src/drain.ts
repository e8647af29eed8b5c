// `keyhold drain NODE`: asks one node to leave gracefully, then waits for it to leave the
// member list.
import { ID_PATTERN, type NodeReport } from "@keyhold/core";
import { intOption, type Parsed } from "./args.js";
import type { AdminClient } from "./client.js";
import { UsageError } from "./errors.js";
import { type Io, json, out } from "./output.js";
import { sleep } from "./watch.js";

export async function drain(p: Parsed, client: AdminClient, io: Io): Promise<number> {
  const node = p.args[0]!;
  if (!ID_PATTERN.test(node)) throw new UsageError(`NODE must be a node id, got ${JSON.stringify(node)}`);
  const waitMs = intOption("wait", p.values.wait, 30_000, 0, 3_600_000);
  const t0 = Date.now();
  await client.drain(node, p.timeoutMs);
  let left = waitMs === 0;
  while (!left && Date.now() - t0 < waitMs) {
    await sleep(200, io.signal);
    const reports = await client.gather(p.timeoutMs).catch(() => [] as NodeReport[]);
    left = !reports.some((r) => r.id === node || r.members.includes(node));
  }
  const result = { node, draining: true, left, ms: Date.now() - t0 };
  if (p.json) json(io, result);
  else
    out(
      io,
      waitMs === 0
        ? `${node}: draining`
        : left
          ? `${node}: left the cluster after ${result.ms} ms`
          : `${node}: draining, still a member after ${waitMs} ms`,
    );
  return left || waitMs === 0 ? 0 : 1;
}
