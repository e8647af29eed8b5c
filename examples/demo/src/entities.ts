// The entities the demo cluster hosts: a plain counter, and one replicated to three nodes.
import { Entity } from "@keyhold/actors";

export class Counter extends Entity<{ n: number }> {
  static readonly type: string = "counter";
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
  get() {
    return this.state.n;
  }
}

/** The same counter with two warm standbys: its acknowledged increments survive a SIGKILL. */
export class ReplicatedCounter extends Counter {
  static override readonly type = "replicated-counter";
  static readonly replicas = 3;
}

export const entities = [Counter, ReplicatedCounter];
