// The counters write.mjs asks: the same shape as bench/replication/entities.ts, in plain JS.
import { Entity } from "@keyhold/actors";

class WriteCounter extends Entity {
  initialState() {
    return { n: 0 };
  }
  add(by) {
    this.state.n += by;
    return this.state.n;
  }
}

export class W1 extends WriteCounter {
  static type = "rep1";
  static replicas = 1;
}
export class W2 extends WriteCounter {
  static type = "rep2";
  static replicas = 2;
}
export class W3 extends WriteCounter {
  static type = "rep3";
  static replicas = 3;
}

export const writeEntities = [W1, W2, W3];
