// Where a command writes, and the plain-text renderings of the views (--json prints the views
// themselves).
import { bold, duration, ms, num, red, type Style, table } from "./format.js";
import type { handoffsView, membersView, statsView } from "./view.js";

/** Where a command writes, and the environment it reads (process's own in main.ts). */
export interface Io {
  readonly stdout: { write(s: string): unknown; readonly isTTY?: boolean | undefined };
  readonly stderr: { write(s: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Ends `watch` and `dashboard`; main.ts aborts it on SIGINT/SIGTERM. */
  readonly signal?: AbortSignal;
}

export const out = (io: Io, text: string) => io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
export const json = (io: Io, value: unknown) => io.stdout.write(`${JSON.stringify(value)}\n`);

export function membersText(style: Style, v: ReturnType<typeof membersView>): string {
  const c = v.config;
  const rows = v.members.map((m) => [
    m.id,
    m.leaseAgeMs === null ? "-" : m.leaseAgeMs > c.ttlMs ? red(style, ms(m.leaseAgeMs)) : ms(m.leaseAgeMs),
    m.fenced === null ? red(style, "no answer") : m.fenced ? red(style, "FENCED") : "no",
    num(m.owned),
    duration(m.uptimeMs),
    m.drainAllowed ? "yes" : "no",
  ]);
  return (
    `${bold(style, `cluster ${v.cluster}`)}: ${v.members.length} members, ring ${c.ringSize}, hash ${c.hash}, ` +
    `heartbeat ${c.heartbeatMs} ms, ttl ${c.ttlMs} ms, skew ${c.skewMs} ms\n` +
    table(style, ["MEMBER", "LEASE AGE", "FENCED", "PARTITIONS", "UPTIME", "DRAIN"], rows) +
    (v.departed.length > 0 ? `\nrecently left: ${v.departed.join(", ")}` : "")
  );
}

export function statsText(style: Style, nodes: ReturnType<typeof statsView>["nodes"]): string {
  const rows = nodes.map((n) => [
    n.id,
    n.asksPerSec === null ? "-" : n.asksPerSec.toFixed(1),
    ms(n.p50Ms),
    ms(n.p99Ms),
    num(n.mailbox),
    num(n.active),
    num(n.known),
    String(n.owned),
    num(n.handoffsInProgress),
    n.fenced ? red(style, "FENCED") : "no",
  ]);
  return table(
    style,
    ["NODE", "ASKS/S", "P50", "P99", "MAILBOX", "ACTIVE", "KNOWN", "OWNED", "MOVING", "FENCED"],
    rows,
  );
}

export function handoffsText(style: Style, v: ReturnType<typeof handoffsView>): string {
  const moving =
    v.inProgress.length === 0
      ? "no hand-offs in progress"
      : table(
          style,
          ["NODE", "PARTITION", "STATE"],
          v.inProgress.map((h) => [h.node, String(h.partition), h.state]),
        );
  const recent =
    v.recent.length === 0
      ? "no recent hand-offs"
      : table(
          style,
          ["NODE", "PARTITION", "FROM", "MS", "RECORDS", "AT"],
          v.recent.map((h) => [
            h.node,
            String(h.partition),
            h.from.join(",") || "-",
            String(Math.round(h.ms)),
            String(h.records),
            new Date(h.at).toISOString(),
          ]),
        );
  return `${bold(style, "In progress")}\n${moving}\n\n${bold(style, "Recent")}\n${recent}`;
}
