// The live commands: `watch` redraws members, stats and hand-offs every interval, and
// `dashboard` serves the web page; both run until the signal aborts (or --count frames).
import type { NodeReport } from "@keyhold/core";
import { intOption, type Parsed } from "./args.js";
import type { AdminClient } from "./client.js";
import { startDashboard } from "./dashboard.js";
import { red, type Style } from "./format.js";
import { type Io, json, membersText, out, statsText } from "./output.js";
import { handoffsView, membersView, statsView } from "./view.js";

export async function watch(p: Parsed, client: AdminClient, io: Io, style: Style): Promise<number> {
  const intervalMs = intOption("interval", p.values.interval, 1000, 50, 600_000);
  const count = intOption("count", p.values.count, 0, 0, 1_000_000_000);
  const redraw = io.stdout.isTTY === true && !p.json;
  for (let frame = 0; count === 0 || frame < count; frame++) {
    if (frame > 0 && !(await sleep(intervalMs, io.signal))) break;
    let reports: NodeReport[];
    try {
      reports = await client.gather(p.timeoutMs);
    } catch (err) {
      // A live view outlives a blip: say so and keep polling.
      const line = `keyhold: ${(err as Error).message}`;
      if (p.json) json(io, { at: Date.now(), error: line });
      else out(io, `${redraw ? "\x1b[H\x1b[2J" : ""}${new Date().toISOString()} ${red(style, line)}`);
      continue;
    }
    const members = membersView(p.cluster, reports);
    const stats = statsView(reports);
    const handoffs = handoffsView(reports);
    if (p.json) {
      json(io, { at: Date.now(), members, stats, handoffs: { inProgress: handoffs.inProgress } });
      continue;
    }
    const moving =
      handoffs.inProgress.length === 0
        ? "no hand-offs in progress"
        : `hand-offs in progress: ${handoffs.inProgress.map((h) => `${h.partition}@${h.node} (${h.state})`).join(", ")}`;
    out(
      io,
      `${redraw ? "\x1b[H\x1b[2J" : ""}${new Date().toISOString()}  every ${intervalMs} ms${redraw ? ", Ctrl-C to stop" : ""}\n` +
        `${membersText(style, members)}\n\n${statsText(style, stats.nodes)}\n\n${moving}\n`,
    );
  }
  return 0;
}

/** Serves the dashboard until the signal aborts. */
export async function dashboard(p: Parsed, client: AdminClient, io: Io): Promise<number> {
  const port = intOption("port", p.values.port, 4400, 0, 65535);
  const host = typeof p.values.host === "string" ? p.values.host : "127.0.0.1";
  const intervalMs = intOption("interval", p.values.interval, 500, 50, 60_000);
  // Fails fast when nothing answers, like every other command.
  await client.gather(p.timeoutMs);
  const d = await startDashboard({
    client,
    port,
    host,
    intervalMs,
    timeoutMs: Math.min(p.timeoutMs, intervalMs * 2),
  });
  out(io, p.json ? JSON.stringify({ url: d.url }) : `keyhold dashboard for cluster ${p.cluster}: ${d.url}`);
  await untilAborted(io.signal);
  await d.close();
  return 0;
}

/** Sleeps `ms`; resolves false when `signal` aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function untilAborted(signal?: AbortSignal): Promise<void> {
  if (!signal) return new Promise(() => {});
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}
