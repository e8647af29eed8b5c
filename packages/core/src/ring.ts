// The ring: placement precomputed for one member set (and the admission caps of joining
// members, placement.ts). Built once per change so that place() is a hash plus an array read
// and owners() a slice, with no I/O.
import { hashKey, type Key } from "./hash.js";
import { type AdmissionCaps, cappedOrder, compareCandidates, scoreOf } from "./placement.js";

const EMPTY: readonly string[] = Object.freeze([]);
const NO_CAPS: AdmissionCaps = new Map();

export class Ring {
  readonly ringSize: number;
  /** Members, sorted and distinct. */
  readonly members: readonly string[];
  /** Admission fronts of the members that join step by step (only members of this ring). */
  readonly caps: AdmissionCaps;
  // Per partition, every member best first. O(members * ringSize) to build; membership
  // changes are rare next to lookups.
  readonly #order: ReadonlyArray<readonly string[]>;
  readonly #primary: ReadonlyArray<string | undefined>;
  // Per partition, the plain HRW winner (what the owner is once no cap applies).
  readonly #winner: ReadonlyArray<string | undefined>;

  constructor(members: Iterable<string>, ringSize: number, caps: AdmissionCaps = NO_CAPS) {
    this.ringSize = ringSize;
    this.members = Object.freeze([...new Set(members)].sort());
    const live = new Map<string, number>();
    for (const m of this.members) {
      const a = caps.get(m);
      if (a !== undefined && a < ringSize) live.set(m, a);
    }
    this.caps = live;
    const order: (readonly string[])[] = new Array(ringSize);
    const primary: (string | undefined)[] = new Array(ringSize);
    const winner: (string | undefined)[] = new Array(ringSize);
    const scores = new Array<number>(this.members.length);
    const idx = this.members.map((_, i) => i);
    for (let p = 0; p < ringSize; p++) {
      for (let i = 0; i < this.members.length; i++) scores[i] = scoreOf(this.members[i]!, p);
      const sorted = idx
        .slice()
        .sort((a, b) => compareCandidates(this.members[a]!, scores[a]!, this.members[b]!, scores[b]!));
      // Not frozen: V8's slice() on a frozen array is several times slower, and rows stay private.
      const hrw = sorted.map((i) => this.members[i]!);
      const row = live.size === 0 ? hrw : cappedOrder(hrw, p, live);
      order[p] = row;
      primary[p] = row[0];
      winner[p] = hrw[0];
    }
    this.#order = order;
    this.#primary = primary;
    this.#winner = winner;
  }

  /** The partition of a key, 0 .. ringSize-1. */
  partition(key: Key): number {
    return hashKey(key) % this.ringSize;
  }

  /** The owning member of a key, or undefined when the ring has no members. */
  place(key: Key): string | undefined {
    return this.#primary[hashKey(key) % this.ringSize];
  }

  /** The owner of a partition, or undefined when the ring has no members. */
  ownerOfPartition(partition: number): string | undefined {
    return this.#primary[partition];
  }

  /** The `n` best distinct members for a key, best first (fewer when fewer are live). */
  owners(key: Key, n: number): string[] {
    return this.ownersOfPartition(hashKey(key) % this.ringSize, n);
  }

  /** The `n` best distinct members for a partition, best first. */
  ownersOfPartition(partition: number, n: number): string[] {
    return (this.#order[partition] ?? EMPTY).slice(0, n);
  }

  /** The partitions whose owner is `member`, ascending. */
  partitionsOf(member: string): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.ringSize; p++) if (this.#primary[p] === member) out.push(p);
    return out;
  }

  /** The partitions `member` wins by plain HRW (what it owns once uncapped), ascending. */
  partitionsWonBy(member: string): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.ringSize; p++) if (this.#winner[p] === member) out.push(p);
    return out;
  }

  /** The admission front of a member that joins step by step; undefined once it is uncapped. */
  capOf(member: string): number | undefined {
    return this.caps.get(member);
  }
}
