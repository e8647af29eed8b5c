// The entity the fault-testing example runs on its node processes: a register (read, write,
// compare-and-set) that logs each acknowledgement it gives with emitAck.
import { Entity } from "@keyhold/actors";
import { ackClock, emitAck } from "@keyhold/testing";

export class Register extends Entity<{ value: number | null; writer: string | null }> {
  static readonly type = "register";
  static readonly replicas = 3;
  initialState() {
    return { value: null, writer: null };
  }
  read() {
    const t0 = ackClock();
    const value = this.state.value;
    emitAck({ node: `pid-${process.pid}`, key: this.key, op: "", kind: "read", t0, t1: ackClock(), value });
    return value;
  }
  write(value: number, op: string) {
    const t0 = ackClock();
    this.state = { value, writer: op };
    emitAck({ node: `pid-${process.pid}`, key: this.key, op, kind: "write", t0, t1: ackClock(), value });
    return true;
  }
  /** Swaps and returns true if the register holds `expected`; returns false otherwise. */
  cas(expected: number | null, value: number, op: string) {
    if (this.state.value !== expected) return false;
    return this.write(value, op);
  }
  /** The op id of the last write (what `registerLostWrites` needs). */
  writer() {
    return this.state.writer;
  }
}

export const entities = [Register];
