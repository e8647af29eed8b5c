// The lease-table exchange: a starting or rejoining member asks any peer for its lease table
// and tombstones and merges them in; every started member answers such requests. Pure
// functions over a LeaseTable; Membership sends, counts and decides what a merge means.
// An observer uses the same exchange before it starts to learn the cluster's settings.
import type { Clock } from "./clock.js";
import { ConfigMismatchError, StartTimeoutError } from "./errors.js";
import type { LeaseTable } from "./lease.js";
import { type ClusterConfig, type ClusterSetting, diffConfig, parseClusterConfig } from "./options.js";
import type { Transport } from "./transport.js";
import { decode, encode, isMalformed, subjects } from "./wire.js";

/** What merging a peer's reply did. */
export type SyncMerge =
  | { readonly kind: "malformed" }
  | { readonly kind: "mismatch"; readonly error: ConfigMismatchError }
  /** `knowsLivePeer`: the table held a live lease other than ours. */
  | { readonly kind: "merged"; readonly knowsLivePeer: boolean };

export function syncRequest(self: string, config: ClusterConfig): Uint8Array {
  return encode({ v: 1, k: "sync", id: self, cfg: config });
}

/** Merges a peer's sync reply into `table`, unless it is malformed or from another config. */
export function mergeSyncReply(
  table: LeaseTable,
  data: Uint8Array,
  self: string,
  config: ClusterConfig,
  now: number,
): SyncMerge {
  const msg = decode(data);
  if (isMalformed(msg) || msg.k !== "table") return { kind: "malformed" };
  const diff = diffConfig(config, msg.cfg);
  if (diff.length > 0) return { kind: "mismatch", error: new ConfigMismatchError(msg.id, diff) };
  for (const [id, at] of msg.left) table.leave(id, at, now);
  for (const [id, at] of msg.leases) table.observe(id, at, now);
  // A table that knows no live peer (say, from a peer still reconnecting itself) tells a
  // rejoining node nothing it could not see alone.
  return { kind: "merged", knowsLivePeer: msg.leases.some(([id]) => id !== self && table.isLive(id, now)) };
}

/**
 * The answer to a peer's sync request: our table, after sweeping expired leases except the
 * `held` ones (only Membership decides when they go; a joiner rejects their expired leases).
 * "malformed" for a bad request, undefined for our own.
 */
export function syncAnswer(
  table: LeaseTable,
  data: Uint8Array,
  self: string,
  config: ClusterConfig,
  held: ReadonlySet<string>,
  now: number,
): Uint8Array | "malformed" | undefined {
  const msg = decode(data);
  if (isMalformed(msg) || msg.k !== "sync") return "malformed";
  // Answer even on a config mismatch: the joiner needs our config to refuse itself clearly.
  if (msg.id === self) return undefined;
  table.sweep(now, held);
  return encode({
    v: 1,
    k: "table",
    id: self,
    cfg: config,
    leases: table.leases(),
    left: table.tombstones(),
  });
}

/** What an observer needs to learn the running cluster's settings. */
export interface AdoptParams {
  readonly transport: Transport;
  readonly cluster: string;
  readonly self: string;
  /** Our config: the given settings, defaults for the rest. */
  readonly config: ClusterConfig;
  /** The settings given explicitly; these must match, the others are adopted. */
  readonly given: ReadonlySet<ClusterSetting>;
  readonly timeoutMs: number;
  readonly clock: Clock;
}

/**
 * An observer's config, learned from the first member that answers a sync request: the
 * cluster's ring size, lease timings and hash version, except that a setting given explicitly
 * must match (else ConfigMismatchError naming it). A hash version this code does not implement
 * cannot be adopted: placement would differ. Rejects with StartTimeoutError when no member
 * answers within `timeoutMs`. Malformed replies and ones with settings we would refuse as
 * options are skipped: a peer cannot make us adopt a ring we would not accept.
 */
export async function adoptClusterConfig(p: AdoptParams): Promise<ClusterConfig> {
  const subject = subjects(p.cluster).sync;
  const request = syncRequest(p.self, p.config);
  const deadline = p.clock.now() + p.timeoutMs;
  let last = "no member answered";
  for (;;) {
    const left = deadline - p.clock.now();
    if (left <= 0) break;
    let data: Uint8Array | undefined;
    try {
      data = await p.transport.request(subject, request, { timeout: Math.max(1, Math.min(left, 1000)) });
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    const msg = data === undefined ? undefined : decode(data);
    if (msg !== undefined && !isMalformed(msg) && msg.k === "table") {
      const theirs = acceptable(msg.cfg);
      if (theirs) {
        const refused = diffConfig(p.config, theirs).filter(
          (d) => d.setting === "hash version" || p.given.has(d.setting as ClusterSetting),
        );
        if (refused.length > 0) throw new ConfigMismatchError(msg.id, refused);
        return theirs;
      }
      last = `member ${msg.id} sent settings this version does not accept`;
    } else if (msg !== undefined) last = "a malformed sync reply";
    // Nobody there yet (or a bad reply): ask again shortly, until the deadline.
    await new Promise<void>((r) =>
      p.clock.setTimeout(r, Math.min(100, Math.max(0, deadline - p.clock.now()))),
    );
  }
  throw new StartTimeoutError(
    `No member of cluster ${JSON.stringify(p.cluster)} answered within ${p.timeoutMs} ms (${last}), so its ` +
      "ring size and lease timings are unknown. Start a member first, raise `startTimeoutMs`, or give " +
      "ringSize, heartbeatMs, ttlMs and skewMs explicitly.",
  );
}

function acceptable(cfg: ClusterConfig): ClusterConfig | undefined {
  try {
    return { ...parseClusterConfig(cfg), hash: cfg.hash };
  } catch {
    return undefined;
  }
}
