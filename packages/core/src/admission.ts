// Admission fronts (join-steps.ts): the front each joining member advertises in its heartbeats,
// and this node's own while it joins step by step. Membership keeps it next to the lease table;
// ShardNode builds rings with caps() (placement.ts admitted).
import type { AdmissionCaps } from "./placement.js";

export class Admission {
  readonly #ringSize: number;
  readonly #fronts = new Map<string, number>();
  /** Members whose own heartbeat we accepted: their front comes from it, never from a sync reply. */
  readonly #heard = new Set<string>();
  #own: number | undefined;
  #changed = false;

  constructor(ringSize: number) {
    this.#ringSize = ringSize;
  }

  /** This node's own front, or undefined when it is uncapped. */
  get own(): number | undefined {
    return this.#own;
  }

  /** Sets this node's own front (at or past ringSize: uncapped); whether it changed. */
  setOwn(front: number | undefined): boolean {
    const f = front === undefined || front >= this.#ringSize ? undefined : front;
    if (f === this.#own) return false;
    this.#own = f;
    this.#changed = true;
    return true;
  }

  /** Records the front of `id` from an accepted heartbeat (absent: uncapped); whether it changed. */
  observe(id: string, front: number | undefined): boolean {
    this.#heard.add(id);
    return this.#set(id, front);
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

  /** The caps to place with: every member's advertised front, and ours as `self`. */
  caps(self: string): AdmissionCaps {
    const out = new Map(this.#fronts);
    if (this.#own !== undefined) out.set(self, this.#own);
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
