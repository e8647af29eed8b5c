// Entities of the safety tests, hosted by node processes: a counter and a register that both
// keep the ids of the operations applied to them, so a test can tell exactly which
// acknowledged writes survived (replicated, or kept in a store); and `ackRecord`, which the node process uses to log every
// answered ask as an AckRecord (see ShardingOptions.onAck).
import { type AckInfo, Entity } from "@keyhold/actors";

/** A replicated counter remembering every add it applied, by operation id. */
export class OpCounter extends Entity<{ n: number; ops: string[] }> {
  static readonly type: string = "opcounter";
  static readonly replicas: number = 3;
  initialState() {
    return { n: 0, ops: [] as string[] };
  }
  add(op: string, by: number) {
    this.state.n += by;
    this.state.ops.push(op);
    return this.state.n;
  }
  read() {
    return this.state.n;
  }
  ops() {
    return this.state.ops;
  }
}

/** A replicated register: `write(op, v)` replaces the value; every writer's op id is kept. */
export class OpRegister extends Entity<{ value: number | null; ops: string[] }> {
  static readonly type: string = "opregister";
  static readonly replicas: number = 3;
  initialState() {
    return { value: null as number | null, ops: [] as string[] };
  }
  write(op: string, value: number) {
    this.state.value = value;
    this.state.ops.push(op);
    return null;
  }
  read() {
    return this.state.value;
  }
  ops() {
    return this.state.ops;
  }
}

/** OpCounter kept in the node's store (a JetStream KV bucket), not replicated among nodes. */
export class StoredOpCounter extends OpCounter {
  static override readonly type = "sopcounter";
  static override readonly replicas = 1;
}

/** OpRegister kept in the node's store, not replicated among nodes. */
export class StoredOpRegister extends OpRegister {
  static override readonly type = "sopregister";
  static override readonly replicas = 1;
}

/** The entity types a safety load drives: a counter and a register. */
export interface LoadTypes {
  readonly counter: typeof OpCounter;
  readonly register: typeof OpRegister;
}
export const REPLICATED: LoadTypes = { counter: OpCounter, register: OpRegister };
export const STORED: LoadTypes = { counter: StoredOpCounter, register: StoredOpRegister };

export const entities = [OpCounter, OpRegister, StoredOpCounter, StoredOpRegister];

/** One answered ask as an acknowledgement record: writes carry their op id, reads their value. */
export function ackRecord(ack: AckInfo) {
  const key = `${ack.type}/${ack.key}`;
  if (ack.handler === "add" || ack.handler === "write")
    return { key, op: String(ack.args[0]), kind: "write" as const, value: ack.args[1] };
  if (ack.handler === "read") return { key, op: "", kind: "read" as const, value: ack.result };
  return undefined;
}
