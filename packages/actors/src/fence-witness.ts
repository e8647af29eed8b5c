// "A fence too short for a take-over" (docs/concepts/safety.md), per partition. The core says,
// at the unfence, whether any peer can have dropped this node across the fence (`leaseKept`).
// If none can, the view of every peer kept naming this node the owner of what it owned, so
// nobody acquired its partitions, and the pre-fence records of a partition re-acquired after the
// fence are its newest state: they are installed without waiting for members the pull missed
// (handoff.ts), as when the epoch bucket proves the tenure unbroken (fencing.ts).
//
// Owning the partition in every peer's view is not all it takes, so the proof is void for a
// partition (conservatively; each rule closes a way someone else may have served it) when:
// - any pull of it reached this node since the acquisition the fence ended (someone took it,
//   whatever the views say: a pull is sent only by a node whose view names it the owner);
// - a member arrived since that acquisition that outscores this node for it (placement moves it
//   there whatever the lease; capped join fronts are not counted down, so any such joiner);
// - it was released outside a fence since that acquisition (a newer view or a give-up on
//   `stale`), or released twice, or another fence began since the one it was released in;
// - its outbox already held pre-fence records when the fence released it (from an earlier fence,
//   which this proof does not cover);
// - that acquisition never began serving, or was the first acquisition of it on this node (its
//   records may have come from an incomplete pull of an earlier owner).
import { Ring } from "@keyhold/core";

/** One acquisition of a partition on this node, as the witness follows it. */
export interface Tenure {
  readonly p: number;
  /** Fences begun on this node when it was asked for. */
  readonly fences: number;
  /** Pulls of the partition received before it was asked for. */
  readonly pulls: number;
  readonly first: boolean;
  begun: boolean;
  /** The fence (its number) in which the partition was released, once it was. */
  releasedIn: number | undefined;
  void: boolean;
  /** The acquisition before it, whose proof it may be asking for. */
  readonly prior: Tenure | undefined;
}

export class FenceWitness {
  readonly #self: string;
  readonly #ringSize: number;
  #fences = 0;
  #fenced = false;
  /** Fence number -> the core's `leaseKept` at its unfence. */
  readonly #kept = new Map<number, boolean>();
  readonly #pulls = new Map<number, number>();
  readonly #acquisitions = new Map<number, number>();
  /** Per partition, its latest acquisition here (kept across the release, for the next one). */
  readonly #tenures = new Map<number, Tenure>();

  constructor(self: string, ringSize: number) {
    this.#self = self;
    this.#ringSize = ringSize;
  }

  /** A `fenced` event. */
  fenced(): void {
    this.#fences++;
    this.#fenced = true;
    // Only the newest fence's verdict is ever asked for.
    this.#kept.clear();
  }

  /** An `unfenced` event, with the core's verdict on the fence it ends. */
  unfenced(leaseKept: boolean): void {
    if (!this.#fenced) return;
    this.#fenced = false;
    this.#kept.set(this.#fences, leaseKept);
  }

  /** A pull of `p` reached this node (Handoff.servePull), whatever it was answered. */
  pulled(p: number): void {
    this.#pulls.set(p, (this.#pulls.get(p) ?? 0) + 1);
  }

  /** A members event: every joiner that outscores this node for a partition voids its proof. */
  joined(ids: readonly string[]): void {
    for (const id of ids) {
      if (id === this.#self) continue;
      const ring = new Ring([this.#self, id], this.#ringSize);
      for (const t of this.#tenures.values())
        if (ring.ownerOfPartition(t.p) === id) {
          t.void = true;
          if (t.prior) t.prior.void = true;
        }
    }
  }

  /** An acquisition of `p` is asked for: the previous one's tenure (what the proof is about). */
  acquiring(p: number): { readonly prior: Tenure | undefined; readonly tenure: Tenure } {
    const prior = this.#tenures.get(p);
    const n = (this.#acquisitions.get(p) ?? 0) + 1;
    this.#acquisitions.set(p, n);
    const tenure: Tenure = {
      p,
      fences: this.#fences,
      pulls: this.#pulls.get(p) ?? 0,
      first: n === 1,
      begun: false,
      releasedIn: undefined,
      void: this.#fenced,
      prior,
    };
    this.#tenures.set(p, tenure);
    return { prior, tenure };
  }

  /** The acquisition began serving (partitions.begin). */
  begun(t: Tenure): void {
    if (this.#tenures.get(t.p) === t) t.begun = true;
    else t.void = true;
  }

  /** `p` is released here; `preFenceHeld`: its outbox held pre-fence records already. */
  released(p: number, preFenceHeld: boolean): void {
    const t = this.#tenures.get(p);
    if (t === undefined) return;
    if (!this.#fenced || preFenceHeld || t.releasedIn !== undefined) t.void = true;
    t.releasedIn = this.#fences;
  }

  /**
   * Whether the pre-fence records of `p`, released when `prior` was ended by a fence, may be
   * installed without waiting for the members a pull missed: no peer can have dropped this node
   * across that fence, and none of the rules above voids the proof for `p`.
   */
  holds(p: number, prior: Tenure | undefined): boolean {
    return this.voided(p, prior) === undefined;
  }

  /** Why the proof for `p` is void (for the log), or undefined when it holds. */
  voided(p: number, prior: Tenure | undefined): string | undefined {
    if (prior === undefined || prior.p !== p) return "no earlier acquisition";
    if (prior.first) return "its first acquisition here";
    if (!prior.begun) return "the acquisition never served";
    if (prior.void) return "a joiner outscoring this node, a second release, or one outside a fence";
    const fence = prior.releasedIn;
    if (fence === undefined || fence !== prior.fences + 1 || fence !== this.#fences || this.#fenced)
      return "another fence";
    if (this.#kept.get(fence) !== true) return "the lease may have been taken over";
    if ((this.#pulls.get(p) ?? 0) !== prior.pulls) return "a pull of it reached this node";
    return undefined;
  }
}
