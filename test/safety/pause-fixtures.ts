// Entities of the queued-input pause test, hosted by node processes: a plain (unreplicated)
// ledger that keeps the ids of the adds it applied and the lineage (start from initialState())
// it descends from; `ackRecord` logs every acknowledged add with that lineage (ShardingOptions
// onAck, through the node process), so a test can tell which owner acknowledged what, when.
import { type AckInfo, Entity } from "@keyhold/actors";

let births = 0;

/** What `Ledger.add` answers: the count after the add and the lineage of the state. */
export interface LedgerAck {
  readonly n: number;
  /** Which start from initialState() this state descends from: `${pid}-${n}`, unique. */
  readonly born: string;
}

export class Ledger extends Entity<{ n: number; born: string; ops: string[] }> {
  static readonly type = "ledger";
  initialState() {
    return { n: 0, born: `${process.pid}-${++births}`, ops: [] as string[] };
  }
  add(op: string): LedgerAck {
    this.state.n++;
    this.state.ops.push(op);
    return { n: this.state.n, born: this.state.born };
  }
  /** As `add`, holding the event loop for `ms` first: a SIGSTOP then lands mid-handler. */
  slowAdd(op: string, ms: number): LedgerAck {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // busy: a synchronous handler that takes a while
    }
    return this.add(op);
  }
  read() {
    return this.state;
  }
}

export const entities = [Ledger];

/** An acknowledged add as an AckRecord; its value is the lineage that acknowledged it. */
export function ackRecord(ack: AckInfo) {
  if (ack.handler !== "add" && ack.handler !== "slowAdd") return undefined;
  return {
    key: `${ack.type}/${ack.key}`,
    op: String(ack.args[0]),
    kind: "write" as const,
    value: (ack.result as LedgerAck).born,
  };
}
