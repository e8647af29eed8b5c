// Entities of the fencing-token tests, hosted by node processes: each answers with the value it
// reached and the fencing token it ran under, so a test can compare tokens with the epoch bucket
// and across changes of owner.
import { Entity } from "@keyhold/actors";

/** A replicated counter that answers [value, fencingToken]. */
export class TokenCounter extends Entity<{ n: number }> {
  static readonly type = "tokencounter";
  static readonly replicas = 3;
  initialState() {
    return { n: 0 };
  }
  add(): [number, number] {
    this.state.n++;
    return [this.state.n, this.fencingToken];
  }
}

/** An unreplicated counter, for nodes started with a store: the store holds it. */
export class StoredCounter extends Entity<{ n: number }> {
  static readonly type = "storedcounter";
  initialState() {
    return { n: 0 };
  }
  add(): [number, number] {
    this.state.n++;
    return [this.state.n, this.fencingToken];
  }
}

export const entities = [TokenCounter, StoredCounter];
