// Entities hosted by the node processes of the re-acquire and slow hand-off safety tests.
import { Entity } from "@keyhold/actors";
import { ackClock, emitAck, reportOracle } from "@keyhold/testing";

let births = 0;

/** What `Tally.add` answers: the count after the add, the lineage, and when it ran. */
export interface TallyAck {
  readonly n: number;
  /** Which start from initialState() this state descends from: `${pid}-${n}`, unique. */
  readonly born: string;
  /** When the handler ran (ackClock, shared by every process on the machine). */
  readonly at: number;
  /** The process that ran it. */
  readonly pid: number;
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
    return { n: this.state.n, born: this.state.born, at, pid: process.pid };
  }
  read() {
    return this.state;
  }
}

/**
 * An entity with a slow handler, for hand-offs that time out while it runs. Every applied
 * message is logged as an acknowledgement interval (handler start to end), and onPassivate as
 * an instant, on the node's process; activations go to the single-instance oracle.
 */
export class Slow extends Entity<{ ops: string[] }> {
  static readonly type = "slow";
  initialState() {
    return { ops: [] };
  }
  override onActivate() {
    reportOracle(`${Slow.type}/${this.key}`, "activate");
  }
  override onPassivate() {
    const at = ackClock();
    this.#log("", "own", at, "passivate");
    reportOracle(`${Slow.type}/${this.key}`, "passivate");
  }
  async slow(op: string, ms: number) {
    const t0 = ackClock();
    await new Promise((r) => setTimeout(r, ms));
    this.state.ops.push(op);
    this.#log(op, "write", t0, "slow");
    return process.pid;
  }
  add(op: string) {
    const t0 = ackClock();
    this.state.ops.push(op);
    this.#log(op, "write", t0, "add");
    return process.pid;
  }
  read() {
    return this.state.ops;
  }
  /** One acknowledgement record on this process, from `t0` to now. */
  #log(op: string, kind: "own" | "write", t0: number, value: string): void {
    emitAck({
      node: String(process.pid),
      key: this.key,
      op,
      kind,
      t0,
      t1: kind === "own" ? t0 : ackClock(),
      value,
    });
  }
}

export const entities = [Tally, Slow];
