// Entities hosted by the node processes of the re-acquire and slow hand-off safety tests.
import { Entity } from "@keyhold/actors";
import { ackClock, emitAck } from "@keyhold/testing";

let births = 0;

/** What `Tally.add` answers: the count after the add, the lineage, and when it ran. */
export interface TallyAck {
  readonly n: number;
  /** Which start from initialState() this state descends from: `${pid}-${n}`, unique. */
  readonly born: string;
  /** When the handler ran (ackClock, shared by every process on the machine). */
  readonly at: number;
}

/**
 * A plain (unreplicated) counter that keeps the ids of the adds it applied and the lineage it
 * descends from, so a test can tell an add lost to the documented restart from initialState()
 * (its lineage was replaced) from one lost by anything else.
 */
export class Tally extends Entity<{ n: number; born: string; ops: string[] }> {
  static readonly type = "tally";
  initialState() {
    return { n: 0, born: `${process.pid}-${++births}`, ops: [] };
  }
  add(op: string): TallyAck {
    const at = ackClock();
    this.state.n++;
    this.state.ops.push(op);
    emitAck({
      node: String(process.pid),
      key: this.key,
      op,
      kind: "write",
      t0: at,
      t1: ackClock(),
      value: 1,
    });
    return { n: this.state.n, born: this.state.born, at };
  }
  read() {
    return this.state;
  }
}

export const entities = [Tally];
