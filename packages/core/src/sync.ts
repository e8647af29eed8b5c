// The lease-table exchange: a starting or rejoining member asks any peer for its lease table
// and tombstones and merges them in; every started member answers such requests. Pure
// functions over a LeaseTable; Membership sends, counts and decides what a merge means.
import { ConfigMismatchError } from "./errors.js";
import type { LeaseTable } from "./lease.js";
import { type ClusterConfig, diffConfig } from "./options.js";
import { decode, encode, isMalformed, MAX_SMALL_MESSAGE_BYTES } from "./wire.js";

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
): SyncMerge {
  const msg = decode(data);
  if (isMalformed(msg) || msg.k !== "table") return { kind: "malformed" };
  const diff = diffConfig(config, msg.cfg);
  if (diff.length > 0) return { kind: "mismatch", error: new ConfigMismatchError(msg.id, diff) };
  for (const [id, at] of msg.left) table.leave(id, at, now);
  // Our own entry matters only at start (a live one means a duplicate id): our own lease is
  // judged from our echoes (Membership), never from the table.
  for (const [id, at] of msg.leases) table.observe(id, at, now, mono);
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
  });
}
