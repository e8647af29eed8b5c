// The lease-table exchange: a starting or rejoining member asks any peer for its lease table
// and tombstones and merges them in; every started member answers such requests. Pure
// functions over a LeaseTable; Membership sends, counts and decides what a merge means.
// An observer uses the same exchange before it starts to learn the cluster's settings.
import type { Admission } from "./admission.js";
import type { Clock } from "./clock.js";
import { ConfigMismatchError, StartTimeoutError } from "./errors.js";
import type { LeaseTable } from "./lease.js";
import type { MembershipStats } from "./membership-types.js";
import { type ClusterConfig, type ClusterSetting, diffConfig, parseClusterConfig } from "./options.js";
import type { Transport } from "./transport.js";
import { decode, encode, isMalformed, MAX_SMALL_MESSAGE_BYTES, subjects } from "./wire.js";

/** What merging a peer's reply did. */
export type SyncMerge =
  | { readonly kind: "malformed" }
  | { readonly kind: "mismatch"; readonly error: ConfigMismatchError }
  /** `knowsLivePeer`: the table held a live lease other than ours. */
  | { readonly kind: "merged"; readonly knowsLivePeer: boolean };

export function syncRequest(self: string, config: ClusterConfig): Uint8Array {
  return encode({ v: 1, k: "sync", id: self, cfg: config });
}

/**
 * Merges a peer's sync reply into `table`, unless it is malformed or from another config.
 * Leases are taken as received now (`mono`): a peer's lease then lasts at least as long here as
 * at the answering peer, never less, so a joiner cannot take a key over before the peers that
 * saw the heartbeat do. The price is that a dead peer stays up to one ttlMs longer in a
 * joiner's view; its keys are then served by the others meanwhile.
 */
export function mergeSyncReply(
  table: LeaseTable,
  data: Uint8Array,
  self: string,
  config: ClusterConfig,
  now: number,
  mono = now,
  admission?: Admission,
): SyncMerge {
  const msg = decode(data);
  if (isMalformed(msg) || msg.k !== "table") return { kind: "malformed" };
  const diff = diffConfig(config, msg.cfg);
  if (diff.length > 0) return { kind: "mismatch", error: new ConfigMismatchError(msg.id, diff) };
  for (const [id, at] of msg.left) table.leave(id, at, now);
  // Our own entry matters only at start (a live one means a duplicate id): our own lease is
  // judged from our echoes (Membership), never from the table.
  for (const [id, at] of msg.leases) table.observe(id, at, now, mono);
  // Fronts of members joining or leaving step by step, so a node that starts mid-step places
  // like the others before their next heartbeat; a member's own heartbeat overrides them.
  if (admission) {
    const fronts = new Map(msg.adm ?? []);
    for (const [id] of msg.leases) if (id !== self) admission.learn(id, fronts.get(id));
  }
  // A table that knows no live peer (say, from a peer still reconnecting itself) tells a
  // rejoining node nothing it could not see alone.
  return { kind: "merged", knowsLivePeer: msg.leases.some(([id]) => id !== self && table.isLive(id, mono)) };
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
  mono = now,
  fronts?: ReadonlyMap<string, number>,
): Uint8Array | "malformed" | undefined {
  const msg = decode(data, MAX_SMALL_MESSAGE_BYTES);
  if (isMalformed(msg) || msg.k !== "sync") return "malformed";
  // Answer even on a config mismatch: the joiner needs our config to refuse itself clearly.
  if (msg.id === self) return undefined;
  table.sweep(now, held, mono);
  return encode({
    v: 1,
    k: "table",
    id: self,
    cfg: config,
    leases: table.leases(),
    left: table.tombstones(),
    ...(fronts !== undefined && fronts.size > 0 ? { adm: [...fronts] } : {}),
  });
}

/** What a member's sync exchange works on (Membership builds it once). */
export interface SyncContext {
  readonly transport: Transport;
  readonly subject: string;
  readonly table: LeaseTable;
  readonly id: string;
  readonly config: ClusterConfig;
  readonly clock: Clock;
  readonly stats: MembershipStats;
  readonly warnOnce: (peer: string, message: string) => void;
  /** Admission fronts: sent in our answers, learnt from replies (absent: neither). */
  readonly admission?: Admission;
}

/**
 * Asks a peer for its lease table and merges it. Resolves whether the table knew a live peer,
 * or undefined when the reply was dropped (malformed, or another config: at start that rejects
 * with the ConfigMismatchError instead). Rejects when nobody answers in `timeout`.
 */
export async function requestSync(
  c: SyncContext,
  timeout: number,
  atStart: boolean,
): Promise<boolean | undefined> {
  const data = await c.transport.request(c.subject, syncRequest(c.id, c.config), { timeout });
  const now = c.clock.now();
  const merged = mergeSyncReply(c.table, data, c.id, c.config, now, c.clock.monoNow(), c.admission);
  if (merged.kind === "malformed") {
    c.stats.malformed++;
    return undefined;
  }
  if (merged.kind === "mismatch") {
    if (atStart) throw merged.error;
    c.stats.configMismatch++;
    c.warnOnce(merged.error.peer, merged.error.message);
    return undefined;
  }
  c.stats.syncsMerged++;
  return merged.knowsLivePeer;
}

/** Answers a peer's sync request on `reply` (see syncAnswer); `held` peers stay in the table. */
export function serveSync(c: SyncContext, held: ReadonlySet<string>, data: Uint8Array, reply: string): void {
  const fronts = c.admission?.advertised(c.id);
  const answer = syncAnswer(c.table, data, c.id, c.config, held, c.clock.now(), c.clock.monoNow(), fronts);
  if (answer === "malformed") c.stats.malformed++;
  if (answer === undefined || answer === "malformed") return;
  c.transport.publish(reply, answer);
  c.stats.syncsServed++;
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
 * An observer's config, learned from the first member heard from: its answer to a sync
 * request, or its heartbeat (a client whose NATS user may not send sync requests still hears
 * heartbeats). Settings not given are adopted; a given one must match (else
 * ConfigMismatchError naming it), and so must the hash version, which this code cannot change.
 * Rejects with StartTimeoutError when no member is heard within `timeoutMs`. Malformed messages
 * and settings we would refuse as options are skipped: no peer makes us adopt such a ring.
 */
export async function adoptClusterConfig(p: AdoptParams): Promise<ClusterConfig> {
  const subs = subjects(p.cluster);
  const request = syncRequest(p.self, p.config);
  const deadline = p.clock.now() + p.timeoutMs;
  let last = "no member answered";
  let heard: ((m: { id: string; cfg: ClusterConfig }) => void) | undefined;
  const heartbeat = new Promise<{ id: string; cfg: ClusterConfig }>((resolve) => {
    heard = resolve;
  });
  const sub = p.transport.subscribe(subs.heartbeat, (m) => {
    const msg = decode(m.data);
    if (!isMalformed(msg) && msg.k === "hb" && msg.id !== p.self && acceptable(msg.cfg)) heard?.(msg);
  });
  try {
    for (;;) {
      const left = deadline - p.clock.now();
      if (left <= 0) break;
      const answer = p.transport
        .request(subs.sync, request, { timeout: Math.max(1, Math.min(left, 1000)) })
        .then((data) => {
          const msg = decode(data);
          if (isMalformed(msg) || msg.k !== "table") return "a malformed sync reply";
          return acceptable(msg.cfg) ? msg : `member ${msg.id} sent settings this version does not accept`;
        })
        .catch((err: unknown) => (err instanceof Error ? err.message : String(err)));
      const got = await Promise.race([answer, heartbeat]);
      if (typeof got !== "string") return decide(p, got.id, got.cfg);
      last = got;
      // Nobody there yet (or a bad reply): ask again shortly, until the deadline.
      const pause = Math.min(100, Math.max(0, deadline - p.clock.now()));
      let timer: unknown;
      const slept = new Promise<void>((r) => {
        timer = p.clock.setTimeout(r, pause);
      });
      const woke = await Promise.race([slept.then(() => undefined), heartbeat]);
      p.clock.clearTimeout(timer);
      if (woke) return decide(p, woke.id, woke.cfg);
    }
  } finally {
    sub.unsubscribe();
  }
  throw new StartTimeoutError(
    `No member of cluster ${JSON.stringify(p.cluster)} was heard within ${p.timeoutMs} ms (${last}), so its ` +
      "ring size and lease timings are unknown. Start a member first, raise `startTimeoutMs`, or give " +
      "ringSize, heartbeatMs, ttlMs and skewMs explicitly.",
  );
}

function decide(p: AdoptParams, peer: string, cfg: ClusterConfig): ClusterConfig {
  const theirs = acceptable(cfg)!;
  const refused = diffConfig(p.config, theirs).filter(
    (d) =>
      d.setting === "hash version" ||
      d.setting === "wire protocol" ||
      d.setting === "fencing tokens (epochs)" ||
      p.given.has(d.setting as ClusterSetting),
  );
  if (refused.length > 0) throw new ConfigMismatchError(peer, refused);
  return theirs;
}

function acceptable(cfg: ClusterConfig): ClusterConfig | undefined {
  try {
    const parsed = { ...parseClusterConfig(cfg), hash: cfg.hash };
    return {
      ...parsed,
      ...(cfg.protocol !== undefined ? { protocol: cfg.protocol } : {}),
      ...(cfg.fencingTokens !== undefined ? { fencingTokens: cfg.fencingTokens } : {}),
    };
  } catch {
    return undefined;
  }
}
