// Admission fronts (join-steps.ts): the front each joining member advertises in its heartbeats,
// and this node's own while it joins step by step. Membership keeps it next to the lease table;
// ShardNode builds rings with caps() (placement.ts admitted).
// Our own front has two values: the one our heartbeats advertise (`own`) and the one we place
// ourselves with. A lower front (giving partitions up) is placed at once; a higher one only once
// a heartbeat advertising it came back, when the peers that got it place us the same way. So a
// node cut off mid-join takes nothing its peers were not told about, and it steps no further
// (setOwn refuses to raise the front again before that echo).
import type { AdmissionCaps } from "./placement.js";

export class Admission {
  readonly #ringSize: number;
  readonly #fronts = new Map<string, number>();
  /** Members whose own heartbeat we accepted: their front comes from it, never from a sync reply. */
  readonly #heard = new Set<string>();
  #own: number | undefined;
  /** The front we place ourselves with (undefined: uncapped): `own` once echoed, or lower. */
  #placed: number | undefined;
  #changed = false;

  constructor(ringSize: number) {
    this.#ringSize = ringSize;
  }

  /** This node's own front, or undefined when it is uncapped. */
  get own(): number | undefined {
    return this.#own;
  }

  /**
   * Sets the front our heartbeats advertise (at or past ringSize: uncapped); whether it changed.
   * A lower front is placed at once; a higher one waits for its echo (observe), and is refused
   * while the last raise was not echoed yet.
   */
  setOwn(front: number | undefined): boolean {
    const f = front === undefined || front >= this.#ringSize ? undefined : front;
    if (f === this.#own) return false;
    const [next, placed] = [f ?? this.#ringSize, this.#placed ?? this.#ringSize];
    if (next > placed && this.#placed !== this.#own) return false;
    this.#own = f;
    if (next < placed) {
      this.#placed = f;
      this.#changed = true;
    }
    return true;
  }

  /**
   * Records the front of `id` from an accepted heartbeat (absent: uncapped); whether what we
   * place with changed. Our own echo (`id === self`) places the front it advertised, unless
   * we advertise a lower one since.
   */
  observe(id: string, front: number | undefined, self?: string): boolean {
    if (id !== self) {
      this.#heard.add(id);
      return this.#set(id, front);
    }
    const echoed = Math.min(front ?? this.#ringSize, this.#own ?? this.#ringSize);
    if (echoed <= (this.#placed ?? this.#ringSize)) return false;
    this.#placed = echoed >= this.#ringSize ? undefined : echoed;
    this.#changed = true;
    return true;
  }

  /**
   * Records the front a peer's sync reply gives for `id` (absent: uncapped), unless we heard
   * `id`'s own heartbeat already (that is fresher); whether it changed.
   */
  learn(id: string, front: number | undefined): boolean {
    return this.#heard.has(id) ? false : this.#set(id, front);
  }

  #set(id: string, front: number | undefined): boolean {
    const f = front === undefined || front >= this.#ringSize ? undefined : front;
    if (this.#fronts.get(id) === f) return false;
    if (f === undefined) this.#fronts.delete(id);
    else this.#fronts.set(id, f);
    this.#changed = true;
    return true;
  }

  /** Whether a front changed since the last call (a ring to rebuild). */
  takeChanged(): boolean {
    const c = this.#changed;
    this.#changed = false;
    return c;
  }

  /** Forgets the fronts of members no longer in `members`. */
  prune(members: readonly string[]): void {
    const live = new Set(members);
    for (const id of this.#heard) if (!live.has(id)) this.#heard.delete(id);
    for (const id of this.#fronts.keys()) if (!live.has(id)) this.#fronts.delete(id);
  }

  /** The caps to place with: every member's advertised front, and the one we place ourselves with as `self`. */
  caps(self: string): AdmissionCaps {
    return this.#with(self, this.#placed);
  }

  /** What a sync reply tells: every member's advertised front, ours included, as heartbeats do. */
  advertised(self: string): AdmissionCaps {
    return this.#with(self, this.#own);
  }

  #with(self: string, front: number | undefined): AdmissionCaps {
    const out = new Map(this.#fronts);
    if (front !== undefined) out.set(self, front);
    else out.delete(self);
    return out;
  }
}

/** Whether two sorted member lists are equal. */
export function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two sets of admission caps are equal. */
export function sameCaps(a: AdmissionCaps, b: AdmissionCaps): boolean {
  if (a.size !== b.size) return false;
  for (const [id, f] of a) if (b.get(id) !== f) return false;
  return true;
}
