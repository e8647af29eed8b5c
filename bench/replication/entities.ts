// The entities the replication benchmarks ask: one counter with 1, 2 and 3 copies. The type names
// have one length, so an ask has the same size on the wire in every case. The node processes load
// this module too (ShardingProcess imports its `entities`).
import { Entity } from "@keyhold/actors";

abstract class BenchCounter extends Entity<{ n: number }> {
  /** `get` only reads: no version bump, no replica copies, no store write (issue 10). */
  static readonly readOnly = ["get"] as const;
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

export class Counter1 extends BenchCounter {
  static readonly type = "rep1";
  static readonly replicas = 1;
}

export class Counter2 extends BenchCounter {
  static readonly type = "rep2";
  static readonly replicas = 2;
}

export class Counter3 extends BenchCounter {
  static readonly type = "rep3";
  static readonly replicas = 3;
}

export const entities = [Counter1, Counter2, Counter3];
