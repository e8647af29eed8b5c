// The per-partition proof that a fence was too short for a take-over (fence-witness.ts): it
// holds only with the core's `leaseKept`, and each rule that may let someone else have served the
// partition voids it.
import { Ring } from "@keyhold/core";
import { describe, expect, it } from "vitest";
import { FenceWitness, type Tenure } from "../src/fence-witness.js";

const P = 7;
const RING = 64;

/** A node "a" that served P twice (the second tenure began), then `during` the fence. */
function fenceOf(
  opts: {
    leaseKept?: boolean;
    beforeFence?: (w: FenceWitness) => void;
    during?: (w: FenceWitness) => void;
    after?: (w: FenceWitness) => void;
    first?: boolean;
    begun?: boolean;
    preFenceHeld?: boolean;
  } = {},
): boolean {
  const w = new FenceWitness("a", RING);
  if (!opts.first) {
    w.begun(w.acquiring(P).tenure);
    w.released(P, false);
  }
  const { tenure } = w.acquiring(P);
  if (opts.begun ?? true) w.begun(tenure);
  opts.beforeFence?.(w);
  w.fenced();
  w.released(P, opts.preFenceHeld ?? false);
  opts.during?.(w);
  w.unfenced(opts.leaseKept ?? true);
  const { prior } = w.acquiring(P);
  opts.after?.(w);
  return w.holds(P, prior);
}

const outscoring = (p: number, wins: boolean) =>
  Array.from({ length: 200 }, (_, i) => `j${i}`).find(
    (id) => (new Ring(["a", id], RING).ownerOfPartition(p) === id) === wins,
  )!;

describe("FenceWitness", () => {
  it("holds for a fence with leaseKept that nothing else touched", () => {
    expect(fenceOf()).toBe(true);
    // A joiner that does not outscore this node for P changes nothing.
    expect(fenceOf({ during: (w) => w.joined([outscoring(P, false), "a"]) })).toBe(true);
    // Pulls of other partitions neither.
    expect(fenceOf({ during: (w) => w.pulled(P + 1) })).toBe(true);
  });

  it("is void without leaseKept", () => {
    expect(fenceOf({ leaseKept: false })).toBe(false);
  });

  it("is void after any pull of the partition since the acquisition the fence ended", () => {
    expect(fenceOf({ beforeFence: (w) => w.pulled(P) })).toBe(false);
    expect(fenceOf({ during: (w) => w.pulled(P) })).toBe(false);
    expect(fenceOf({ after: (w) => w.pulled(P) })).toBe(false);
  });

  it("is void once a joiner that outscores this node for the partition arrived", () => {
    const j = outscoring(P, true);
    expect(fenceOf({ beforeFence: (w) => w.joined([j]) })).toBe(false);
    expect(fenceOf({ during: (w) => w.joined([j]) })).toBe(false);
    expect(fenceOf({ after: (w) => w.joined([j]) })).toBe(false);
  });

  it("is void when released outside a fence, or when another fence began", () => {
    // Released (say a give-up on stale) before the fence, then the fence released it again.
    expect(fenceOf({ beforeFence: (w) => w.released(P, false) })).toBe(false);
    expect(
      fenceOf({
        after: (w) => {
          w.fenced();
          w.unfenced(true);
        },
      }),
    ).toBe(false);
  });

  it("is void when the outbox held pre-fence records already, for a first acquisition, or one that never began", () => {
    expect(fenceOf({ preFenceHeld: true })).toBe(false);
    expect(fenceOf({ first: true })).toBe(false);
    expect(fenceOf({ begun: false })).toBe(false);
  });

  it("is void for an acquisition that was itself superseded before the proof was asked", () => {
    const w = new FenceWitness("a", RING);
    w.begun(w.acquiring(P).tenure);
    w.released(P, false);
    w.begun(w.acquiring(P).tenure);
    w.fenced();
    w.released(P, false);
    w.unfenced(true);
    // The re-acquisition is superseded before it served (a newer view): the next one cannot lean
    // on the fence any more.
    w.acquiring(P);
    w.released(P, true);
    const { prior } = w.acquiring(P);
    expect(w.holds(P, prior)).toBe(false);
    expect(w.holds(P, undefined as Tenure | undefined)).toBe(false);
  });
});
