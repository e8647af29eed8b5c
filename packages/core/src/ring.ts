// The ring: placement precomputed for one member set. Built once per membership change so
// that place() is a hash plus an array read and owners() a slice, with no I/O.
import { hashKey, type Key } from "./hash.js";
import { compareCandidates, scoreOf } from "./placement.js";

const EMPTY: readonly string[] = Object.freeze([]);

export class Ring {
  readonly ringSize: number;
  /** Members, sorted and distinct. */
  readonly members: readonly string[];
  // Per partition, every member best first. O(members * ringSize) to build; membership
  // changes are rare next to lookups.
  readonly #order: ReadonlyArray<readonly string[]>;
  readonly #primary: ReadonlyArray<string | undefined>;

  constructor(members: Iterable<string>, ringSize: number) {
    this.ringSize = ringSize;
    this.members = Object.freeze([...new Set(members)].sort());
    const order: (readonly string[])[] = new Array(ringSize);
    const primary: (string | undefined)[] = new Array(ringSize);
    const scores = new Array<number>(this.members.length);
    const idx = this.members.map((_, i) => i);
    for (let p = 0; p < ringSize; p++) {
      for (let i = 0; i < this.members.length; i++) scores[i] = scoreOf(this.members[i]!, p);
      const sorted = idx
        .slice()
        .sort((a, b) => compareCandidates(this.members[a]!, scores[a]!, this.members[b]!, scores[b]!));
      // Not frozen: V8's slice() on a frozen array is several times slower, and rows stay private.
      const row = sorted.map((i) => this.members[i]!);
      order[p] = row;
      primary[p] = row[0];
    }
    this.#order = order;
    this.#primary = primary;
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
}
