// Entities of the safety tests, hosted by node processes: a counter and a register that both
// keep the ids of the operations applied to them, so a test can tell exactly which
// acknowledged writes survived; and `ackRecord`, which the node process uses to log every
// answered ask as an AckRecord (see ShardingOptions.onAck).
import { type AckInfo, Entity } from "@keyhold/actors";

/** A replicated counter remembering every add it applied, by operation id. */
export class OpCounter extends Entity<{ n: number; ops: string[] }> {
  static readonly type = "opcounter";
  static readonly replicas = 3;
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
  static readonly type = "opregister";
  static readonly replicas = 3;
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

export const entities = [OpCounter, OpRegister];

/** One answered ask as an acknowledgement record: writes carry their op id, reads their value. */
export function ackRecord(ack: AckInfo) {
  const key = `${ack.type}/${ack.key}`;
  if (ack.handler === "add" || ack.handler === "write")
    return { key, op: String(ack.args[0]), kind: "write" as const, value: ack.args[1] };
  if (ack.handler === "read") return { key, op: "", kind: "read" as const, value: ack.result };
  return undefined;
}
