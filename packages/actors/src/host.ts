// A hosting node's parts wired together, each handed only what it uses: the slot registry,
// lifecycle, mailbox, handler runner and durability of its entities, its partitions' states,
// outbox, hand-offs and refills, and the dispatcher in front of them. A client has none.
import type { Clock, Deadlines, Logger, ShardNode, Transport } from "@keyhold/core";
import { Background } from "./background.js";
import { GroupCommit } from "./commit.js";
import { Dispatcher, type DispatchParams, leaseHeld } from "./dispatch.js";
import { Durability } from "./durability.js";
import { type EntityDefinition, FENCING_TOKEN } from "./entity.js";
import type { EpochSource } from "./epochs.js";
import { HandlerRunner, type HostStats } from "./handler.js";
import { Handoff, type HandoffParams } from "./handoff.js";
import { Lifecycle } from "./lifecycle.js";
import { Mailbox } from "./mailbox.js";
import type { ParsedShardingOptions } from "./options.js";
import { Outbox } from "./outbox.js";
import { PartitionStates } from "./partitions.js";
import { Refill } from "./refill.js";
import { ReminderIndex } from "./reminder-index.js";
import { Reminders } from "./reminders.js";
import type { Replicator } from "./replication.js";
import { SlotTable } from "./slots.js";
import type { StateStore } from "./store.js";
import type { Telemetry } from "./telemetry.js";

/** The parts of a node that hosts entities (a client has none). */
export interface HostParts {
  readonly slots: SlotTable;
  readonly lifecycle: Lifecycle;
  readonly partitions: PartitionStates;
  readonly outbox: Outbox;
  readonly handoff: Handoff;
  readonly dispatcher: Dispatcher;
  readonly reminders: Reminders;
  readonly background: Background;
  /** Group commit, when on and some type writes durably (commit.ts). */
  readonly commit: GroupCommit | undefined;
}

export function buildHost(a: {
  readonly node: ShardNode;
  readonly opts: ParsedShardingOptions;
  readonly defs: ReadonlyMap<string, EntityDefinition>;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stats: HostStats;
  readonly store: StateStore | undefined;
  readonly replicator: Replicator | undefined;
  readonly deadlines: Deadlines;
  readonly telemetry: Telemetry;
  readonly reroute: DispatchParams["reroute"];
  readonly onHandoff: NonNullable<HandoffParams["onHandoff"]>;
  readonly epochs: EpochSource;
}): HostParts {
  const { node, opts, clock, logger, stats, store, replicator, telemetry } = a;
  const nodeId = node.id;
  const background = new Background({
    concurrency: opts.backgroundConcurrency,
    logger,
    nodeId,
    fenced: () => node.fenced,
  });
  background.watch(node).catch((err: unknown) => logger.warn(`node ${nodeId}: ${String(err)}`));
  let dispatcher: Dispatcher | undefined;
  const reminders = new Reminders({
    clock,
    logger,
    nodeId,
    deliver: (slot, env) => dispatcher!.deliverOwned(slot, env),
  });
  const slots = new SlotTable(reminders);
  const bufferLimit = opts.mailboxSize * 16;
  const partitions = new PartitionStates({
    bufferLimit,
    logger,
    nodeId,
    context: telemetry.on ? telemetry.context : undefined,
  });
  const index = ReminderIndex.supported(store)
    ? new ReminderIndex({ store: store!, defs: a.defs, slots, reminders, logger, nodeId })
    : undefined;
  let mailbox: Mailbox | undefined;
  const lifecycle: Lifecycle = new Lifecycle({
    maxActive: opts.maxActive,
    idleMs: opts.idleMs,
    clock,
    logger,
    nodeId,
    stats,
    slots,
    load: store ? (slot): Promise<void> => durability.load(slot) : undefined,
    forgetDormant: store !== undefined,
    bind: (inst, slot) => {
      reminders.bind(inst, slot);
      Object.defineProperty(inst, FENCING_TOKEN, { value: () => partitions.stamp(slot.partition) });
    },
    background,
  });
  const durability: Durability = new Durability({
    store,
    replicator: replicator && telemetry.on ? telemetry.replicator(replicator) : replicator,
    slots,
    lifecycle,
    mailbox: () => mailbox!,
    reminders,
    index,
    leaseHeld: (slot) => leaseHeld(node, slot.def.type, slot.key),
  });

  const commit =
    durability.needed && opts.groupCommit
      ? new GroupCommit({ persist: (slot) => durability.persist(slot) })
      : undefined;
  const runner = new HandlerRunner({
    now: () => dispatcher!.runNow(),
    stats,
    tracksAsks: (def) => store !== undefined || def.replicas > 1,
    persist: durability.needed ? (slot) => durability.persist(slot) : undefined,
    stampOf: (p) => partitions.stamp(p),
    commit,
    // Late-bound: the dispatcher is built last; it skips the check for what it runs itself.
    leaseHeld: (slot) => dispatcher!.recheck(slot.def.type, slot.key, false),
  });
  mailbox = new Mailbox({
    mailboxSize: opts.mailboxSize,
    concurrency: opts.concurrency,
    logger,
    nodeId,
    stats,
    activate: telemetry.on
      ? (slot) => telemetry.activation(slot, lifecycle)
      : (slot) => lifecycle.activate(slot),
    run: (slot, env) => runner.run(slot, env),
    forget: (slot) => lifecycle.drop(slot),
    context: telemetry.on ? telemetry.context : undefined,
  });
  lifecycle.attach(mailbox);
  const outbox = new Outbox({ clock, logger, nodeId });
  let handoff: Handoff | undefined;
  const refill = replicator
    ? new Refill({
        replicator,
        partitions,
        slots,
        clock,
        logger,
        nodeId,
        install: (p, recs) => handoff!.install(p, recs),
        background,
        owns: (p) => node.ring.ownerOfPartition(p) === nodeId,
      })
    : undefined;
  handoff = new Handoff({
    node,
    transport: a.transport,
    defs: a.defs,
    cluster: node.cluster,
    nodeId,
    handoffTimeoutMs: opts.handoffTimeoutMs,
    attemptTimeoutMs: opts.attemptTimeoutMs,
    partitions,
    outbox,
    slots,
    lifecycle,
    mailbox,
    replicator,
    refill,
    // Part of the hand-off: the partition's messages wait for it, so it runs at pull priority.
    recoverReminders: index
      ? (p) => background.add("handoff", () => index.recover(p), { dropped: undefined, partition: true })
      : undefined,
    background,
    epochs: a.epochs,
    clock,
    logger,
    onHandoff: a.onHandoff,
  });
  // A join step is done when every partition this node owns is served (core join-steps.ts); the
  // next one follows at the next heartbeat, so a 500 ms window sees at most about one step's stall.
  node.setJoinGate((owned) => owned.every((p) => partitions.state(p) === "ready"));
  dispatcher = new Dispatcher({
    node,
    defs: a.defs,
    partitions,
    slots,
    lifecycle,
    mailbox,
    handoff,
    deadlines: a.deadlines,
    askTimeoutMs: opts.askTimeoutMs,
    bufferLimit,
    onAck: opts.onAck,
    retrySafe: (def) => store !== undefined || def.replicas > 1,
    reroute: a.reroute,
  });
  // A replica refused a copy as stale: stop acting for the whole partition (fencing.ts), unless
  // the refusal says nothing against this tenure: a copy of an older tenure refused by an epoch
  // floor at or below ours, or a replica whose view still names as primary a node ours has
  // dropped (a crash it has not seen yet; in jetstream mode dropped only once the stream confirmed
  // it silent). Giving up then left the partition unserved while the take-back waited, pre-fence,
  // for the dead node. Nothing is acknowledged without that replica's `repok` (replication.ts),
  // so a write refused meanwhile fails retryably until the replica's view has converged.
  replicator?.attach({
    epochOf: (p) => partitions.stamp(p),
    onStale: (p, ep, primary) => {
      if (ep !== undefined) partitions.see(p, ep);
      if (staleFromLaggingView(nodeId, node.ring.members, partitions.stamp(p), ep, primary)) {
        handoff!.staleFromLaggingView();
        return;
      }
      handoff!.giveUp(p);
    },
  });
  return { slots, lifecycle, partitions, outbox, handoff, dispatcher, reminders, background, commit };
}

/**
 * Whether a replica's `stale` answer is no reason to give the partition up (host.ts): either it
 * refused by epoch (`ep`, its floor) with a floor not above this node's tenure (`stamp`), so it
 * refused a copy of an older tenure and takes this one's; or it refused copy by copy, naming as
 * primary a node that is neither this one nor a member in this node's view: its view lags.
 */
export function staleFromLaggingView(
  self: string,
  members: readonly string[],
  stamp: number,
  ep: number | undefined,
  primary: string | null,
): boolean {
  if (ep !== undefined) return stamp > 0 && ep <= stamp;
  return primary !== null && primary !== self && !members.includes(primary);
}
