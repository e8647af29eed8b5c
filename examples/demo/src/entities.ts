// The entity the demo cluster hosts: a counter per key.
import { Entity } from "@keyhold/actors";

export class Counter extends Entity<{ n: number }> {
  static readonly type = "counter";
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

export const entities = [Counter];
