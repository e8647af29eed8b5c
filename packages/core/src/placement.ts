// Placement as pure functions of (key, members, ringSize): the specification that Ring
// precomputes. Anyone can compute placement from a member list with these; they do the full
// per-call rendezvous (HRW) loop, so hot paths use Ring instead.
import { hashKey, type Key, murmur3String } from "./hash.js";

/** The partition of a key: `murmur3(key, seed 0) mod ringSize`. */
export function partitionOf(key: Key, ringSize: number): number {
  return hashKey(key) % ringSize;
}

/**
 * The rendezvous score of a member for a partition: murmur3 of the member id's UTF-8 bytes,
 * seeded with the partition number. Higher wins; equal scores go to the smaller member id.
 */
export function scoreOf(memberId: string, partition: number): number {
  return murmur3String(memberId, partition);
}

/** Best-first comparison of two (member, score) pairs for the same partition. */
export function compareCandidates(aId: string, aScore: number, bId: string, bScore: number): number {
  if (aScore !== bScore) return bScore - aScore;
  return aId < bId ? -1 : aId > bId ? 1 : 0;
}

/** The owner of a partition among `members`, or undefined when there are none. */
export function ownerOfPartition(partition: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const s = scoreOf(m, partition);
    if (best === undefined || compareCandidates(m, s, best, bestScore) < 0) {
      best = m;
      bestScore = s;
    }
  }
  return best;
}

/** The `n` best distinct members for a partition, best first. */
export function ownersOfPartition(partition: number, members: readonly string[], n: number): string[] {
  const unique = [...new Set(members)];
  const scored = unique.map((id) => ({ id, score: scoreOf(id, partition) }));
  scored.sort((a, b) => compareCandidates(a.id, a.score, b.id, b.score));
  return scored.slice(0, Math.max(0, n)).map((c) => c.id);
}

/** The owner of a key among `members` (per-call HRW), or undefined when there are none. */
export function ownerOf(key: Key, members: readonly string[], ringSize: number): string | undefined {
  return ownerOfPartition(partitionOf(key, ringSize), members);
}

/** The `n` best distinct members for a key, best first (per-call HRW). */
export function ownersOf(key: Key, members: readonly string[], n: number, ringSize: number): string[] {
  return ownersOfPartition(partitionOf(key, ringSize), members, n);
}

/**
 * Admission caps of joining members: member id to its admission front `a` (0 .. ringSize). A
 * capped member may own partition `p` only when `p < a`; a member without an entry is uncapped.
 * Members advertise their front in their heartbeats while they join step by step.
 */
export type AdmissionCaps = ReadonlyMap<string, number>;

/** Whether `member` may own partition `p` under `caps`. */
export function admitted(member: string, partition: number, caps: AdmissionCaps | undefined): boolean {
  const front = caps?.get(member);
  return front === undefined || partition < front;
}

/**
 * HRW order of a partition under admission caps: the members admitted for it first, then the
 * others, each group in HRW order. A member capped below the partition is neither its owner
 * nor its replica while another one can be, so a joiner at front 0 changes no owner and no
 * replica set. When no member is admitted the order is plain HRW (someone must serve it).
 */
export function cappedOrder(
  row: readonly string[],
  partition: number,
  caps: AdmissionCaps | undefined,
): string[] {
  if (caps === undefined || caps.size === 0) return [...row];
  const inside = row.filter((m) => admitted(m, partition, caps));
  if (inside.length === 0 || inside.length === row.length) return [...row];
  return [...inside, ...row.filter((m) => !admitted(m, partition, caps))];
}

/** The `n` best distinct members for a partition under admission caps, best first. */
export function ownersOfPartitionCapped(
  partition: number,
  members: readonly string[],
  n: number,
  caps: AdmissionCaps | undefined,
): string[] {
  const all = ownersOfPartition(partition, members, members.length);
  return cappedOrder(all, partition, caps).slice(0, Math.max(0, n));
}
