// The old owner's side of a hand-off (handoff.ts): draining a partition this node stops owning
// and turning its entities into the records the next owner pulls. Queued messages finish first;
// a handler that never returns must not hold the partition hostage, so every wait is bounded.
import type { Clock, Logger } from "@keyhold/core";
import type { Lifecycle } from "./lifecycle.js";
import type { Mailbox } from "./mailbox.js";
import type { PartitionStates } from "./partitions.js";
import { BUSY_PATIENCE_FACTOR } from "./pull.js";
import type { SlotTable } from "./slots.js";
import type { EntityRecord } from "./wire.js";

export interface DrainParams {
  readonly partitions: PartitionStates;
  readonly slots: SlotTable;
  readonly lifecycle: Lifecycle;
  readonly mailbox: Mailbox;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly nodeId: string;
  readonly handoffTimeoutMs: number;
}

/**
 * Drains partition `p` (already marked releasing, `done` resolving when the release ends),
 * passivates and forgets its entities, and returns their records.
 */
export async function drainPartition(
  a: DrainParams,
  p: number,
  done: Promise<void>,
): Promise<EntityRecord[]> {
  const { partitions, slots, lifecycle, mailbox, clock, logger, nodeId, handoffTimeoutMs } = a;
  const held = slots.slotsOf(p);
  const idle = Promise.all(held.map((s) => mailbox.whenIdle(s)));
  const within = async (ms: number): Promise<boolean> => {
    let timer: unknown;
    const ok = await Promise.race([
      idle.then(() => true),
      new Promise<boolean>((r) => {
        timer = clock.setTimeout(() => r(false), ms);
      }),
    ]);
    clock.clearTimeout(timer);
    return ok;
  };
  if (!(await within(handoffTimeoutMs))) {
    // A handler still runs: what is queued behind it goes to the new owner (SlotMoved,
    // answered "moved"), nothing more runs here, and the state is handed over once the
    // running handlers are done, so there is never a second live instance and
    // onPassivate runs after the handler. Pulls meanwhile are answered "busy".
    logger.warn(
      `node ${nodeId}: handlers of partition ${p} still running after ${handoffTimeoutMs} ms; their queued messages go to the new owner, the state once they end`,
    );
    for (const s of held) if (!mailbox.isIdle(s)) mailbox.kill(s);
    partitions.set(p, { s: "releasing", done, busy: true });
    // Bounded too, so that a handler that never returns holds nobody hostage: past it,
    // the state moves on as it is and onPassivate is skipped (never run beside a handler).
    if (!(await within(handoffTimeoutMs * (BUSY_PATIENCE_FACTOR - 2))))
      logger.warn(
        `node ${nodeId}: handlers of partition ${p} still running; handing over their current state without onPassivate`,
      );
  }
  const recs: EntityRecord[] = [];
  for (const s of held) {
    const wasActive = s.instance !== undefined;
    if (s.dead && !mailbox.isIdle(s)) {
      recs.push({ ...slots.record(s), act: wasActive });
      lifecycle.discard(s);
    } else {
      await lifecycle.passivate(s);
      recs.push({ ...slots.record(s), act: wasActive });
    }
    lifecycle.drop(s);
  }
  return recs;
}
