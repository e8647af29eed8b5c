// The entity every actors benchmark asks: add(1) returning a number, the example payload.
// Its own module so the host child process loads the same class as the bench process.
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
}

export const entities = [Counter];
