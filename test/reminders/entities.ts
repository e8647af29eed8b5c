// Entity classes with reminders, hosted by node processes in the reminder tests. Each fire is
// reported to the parent process (ShardingProcess.oracle) with its name, due time and wall time.
import { Entity } from "@keyhold/actors";

export interface FireEvent {
  readonly key: string;
  readonly pid: number;
  readonly event: "reminder";
  readonly name: string;
  /** The due time onReminder was told it fires for, and the one the payload carries. */
  readonly due: number;
  readonly payloadDue: number;
  readonly at: number;
}

/** An alarm clock with two warm standbys: its reminders survive the death of its owner. */
export class ReplicatedAlarm extends Entity<{ fired: number }> {
  static readonly type: string = "ralarm";
  static readonly replicas: number = 3;
  initialState() {
    return { fired: 0 };
  }
  /** Sets reminder `name` due at `due` (epoch ms); the payload carries the due time back. */
  at(name: string, due: number) {
    this.remind(name, { at: due }, { due });
  }
  fired() {
    return this.state.fired;
  }
  override onReminder(name: string, payload: unknown, info: { due: number }) {
    this.state.fired++;
    const e: FireEvent = {
      key: this.key,
      pid: process.pid,
      event: "reminder",
      name,
      due: info.due,
      payloadDue: (payload as { due: number }).due,
      at: Date.now(),
    };
    process.send?.({ type: "oracle", e });
  }
}

/** The same alarm with a single copy: with a store, its reminders live in the store. */
export class StoredAlarm extends ReplicatedAlarm {
  static override readonly type: string = "salarm";
  static override readonly replicas: number = 1;
}

export const entities = [ReplicatedAlarm, StoredAlarm];
