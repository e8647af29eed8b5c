// Running one message on a live entity: answer a retried ask from the applied asks it
// remembers, else call the handler, bump the version, remember the ask, make the change
// durable (durability.ts) and only then answer. A read-only handler (`static readOnly`) sees a
// guarded view of the state (read-only.ts) and skips the version, the ask record and the
// durable write: it changed nothing.
import type { GroupCommit } from "./commit.js";
import type { EntityDefinition } from "./entity.js";
import { ActorError, fromWireError, HandlerError, toWireError, type WireError } from "./errors.js";
import type { Envelope } from "./mailbox.js";
import { beginRead, endRead } from "./read-only.js";
import { callWithValidArgs } from "./schema.js";
import { assertSerializable } from "./serializable.js";
import type { Slot } from "./slots.js";
import { MAX_HELD_ANSWERS, RECENT_ASKS } from "./wire.js";

export interface HostStats {
  activations: number;
  passivations: number;
  handled: number;
  handlerErrors: number;
  mailboxFull: number;
}

export function emptyHostStats(): HostStats {
  return { activations: 0, passivations: 0, handled: 0, handlerErrors: 0, mailboxFull: 0 };
}

export interface HandlerRunnerParams {
  /**
   * Monotonic time, ms, that stamps a run on the entity's idle clock (slot.lastUsed): the
   * dispatcher's runNow, which reuses the admission's reading inside the admitting turn.
   */
  readonly now: () => number;
  readonly stats: HostStats;
  /** Whether an entity type remembers its applied asks (replicated or stored types). */
  readonly tracksAsks: (def: EntityDefinition) => boolean;
  /**
   * Makes a handled message durable (store write, replica quorum) before its caller is
   * answered; undefined when the entity type needs neither. A rejection fails the message.
   */
  readonly persist: ((slot: Slot) => Promise<void> | undefined) | undefined;
  /** The acquisition stamp of this node's tenure of a partition (partitions.ts). */
  readonly stampOf: (partition: number) => number;
  /**
   * The lease check right before a handler runs as owner (a message may have waited in the
   * mailbox past a pause); throws NotOwnerError (dispatch.ts leaseHeld).
   */
  readonly leaseHeld: (slot: Slot) => void;
  /**
   * Group commit (commit.ts): answers of durable types are held until a covering write is
   * durable while the entity goes on; undefined (`groupCommit: false`) waits for each write.
   */
  readonly commit?: GroupCommit | undefined;
}

export class HandlerRunner {
  readonly #p: HandlerRunnerParams;

  constructor(params: HandlerRunnerParams) {
    this.#p = params;
  }

  /**
   * Runs one message on the slot's live instance (the mailbox activates it first); returns a
   * promise when it must be waited for, else completes it now.
   */
  run(slot: Slot, env: Envelope): Promise<void> | undefined {
    try {
      this.#p.leaseHeld(slot);
    } catch (err) {
      env.done(err);
      return undefined;
    }
    const inst = slot.instance!;
    slot.lastUsed = this.#p.now(); // monotonic: far cheaper than Date.now here
    if (env.id !== undefined && slot.recent !== undefined) {
      const seen = slot.recent.find((r) => r[0] === env.id);
      if (seen) {
        // Applied before (on this node or a previous owner): answer, do not apply again.
        const answer = (err: unknown) => {
          if (err !== undefined) env.done(err);
          else if (seen[1]) env.done(undefined, seen[2]);
          else
            env.done(
              fromWireError(seen[2] as WireError, { type: slot.def.type, key: slot.key, handler: env.h }),
            );
        };
        // With group commit, it may have been applied by a write not yet durable.
        const commit = this.#commitOf(slot);
        if (commit) return commit.after(slot, answer);
        // Without group commit the write that applied it may have failed (a missed quorum the
        // router retries with this id): make the current state durable again before answering.
        const durable = this.#p.tracksAsks(slot.def) ? this.#p.persist?.(slot) : undefined;
        if (durable)
          return durable.then(() => {
            slot.unconfirmed = false;
            answer(undefined);
          }, answer);
        answer(undefined);
        return undefined;
      }
    }
    const readOnly = isReadOnly(slot, env);
    if (readOnly) beginRead(slot, inst, env.h);
    else this.#commitOf(slot)?.begin(slot);
    let result: unknown;
    try {
      if (env.run !== undefined) result = env.run(inst);
      else {
        const fn = (inst as unknown as Record<string, (...a: unknown[]) => unknown>)[env.h]!;
        // No schema for this handler: call it straight (no closure per message).
        result =
          slot.def.schemas?.has(env.h) === true
            ? callWithValidArgs(slot.def, env.h, env.a, (a) => fn.apply(inst, a as unknown[]))
            : fn.apply(inst, env.a as unknown[]);
      }
    } catch (err) {
      const assigned = readOnly && endRead(slot, inst);
      this.#p.stats.handlerErrors++;
      return this.#complete(slot, env, undefined, assigned ? assigned : asHandlerError(err), readOnly);
    }
    if (
      result !== null &&
      typeof result === "object" &&
      typeof (result as Promise<unknown>).then === "function"
    ) {
      return (result as Promise<unknown>).then(
        (r) => {
          const assigned = readOnly && endRead(slot, inst);
          return this.#complete(slot, env, assigned ? undefined : r, assigned || undefined, readOnly);
        },
        (err: unknown) => {
          const assigned = readOnly && endRead(slot, inst);
          this.#p.stats.handlerErrors++;
          return this.#complete(slot, env, undefined, assigned ? assigned : asHandlerError(err), readOnly);
        },
      );
    }
    const assigned = readOnly && endRead(slot, inst);
    return this.#complete(slot, env, assigned ? undefined : result, assigned || undefined, readOnly);
  }

  /** After the handler: version, remembered ask, durable write, then the answer. */
  #complete(
    slot: Slot,
    env: Envelope,
    result: unknown,
    failure: unknown,
    readOnly = false,
  ): Promise<void> | undefined {
    const commit = this.#commitOf(slot);
    // Only group commit holds answers: no closure on the other paths.
    const release = commit
      ? (err: unknown) => {
          if (err !== undefined) env.done(err);
          else this.#answer(slot, env, result, failure);
        }
      : undefined;
    if (readOnly) {
      // Nothing changed (writes were refused): no version, no record, nothing to make durable;
      // with group commit the answer still waits until what it saw is durable.
      if (commit) return commit.after(slot, release!);
      // Without group commit: a state not known durable in this tenure is written first.
      const durable = slot.unconfirmed && this.#p.tracksAsks(slot.def) ? this.#p.persist?.(slot) : undefined;
      if (durable)
        return durable.then(
          () => {
            slot.unconfirmed = false;
            this.#answer(slot, env, result, failure);
          },
          (err: unknown) => env.done(err),
        );
      this.#answer(slot, env, result, failure);
      return undefined;
    }
    // The handler may have changed state even when it threw.
    slot.version++;
    slot.acq = this.#p.stampOf(slot.partition);
    if (env.id !== undefined && this.#p.tracksAsks(slot.def)) {
      const recent = slot.recent ?? [];
      recent.push([env.id, failure === undefined, failure === undefined ? result : toWireError(failure)]);
      // Every ask whose answer group commit still holds stays remembered, beside the last few.
      const keep = RECENT_ASKS + (commit ? Math.min(commit.held(slot) + 1, MAX_HELD_ANSWERS) : 0);
      while (recent.length > keep) recent.shift();
      slot.recent = recent;
    }
    if (commit) return commit.hold(slot, release!, true);
    const durable = this.#p.persist?.(slot);
    if (durable) {
      return durable.then(
        () => {
          slot.unconfirmed = false;
          this.#answer(slot, env, result, failure);
        },
        (err: unknown) => env.done(err),
      );
    }
    this.#answer(slot, env, result, failure);
    return undefined;
  }

  /** The group commit pipeline when the slot's type writes durably and it is on. */
  #commitOf(slot: Slot): GroupCommit | undefined {
    return this.#p.commit !== undefined && this.#p.tracksAsks(slot.def) ? this.#p.commit : undefined;
  }

  #answer(slot: Slot, env: Envelope, result: unknown, failure: unknown): void {
    if (failure !== undefined) {
      env.done(failure);
      return;
    }
    this.#p.stats.handled++;
    // A plain scalar needs no walk, and no string naming it (built only for a value to walk).
    const t = typeof result;
    if (t !== "number" && t !== "string" && t !== "boolean" && t !== "undefined") {
      try {
        assertSerializable(result, `the result of ${slot.def.type}.${env.h}`, "result");
      } catch (err) {
        env.done(err);
        return;
      }
    }
    env.done(undefined, result);
  }
}

/** What a caller sees when a handler throws: the same HandlerError, local or remote. */
export function asHandlerError(err: unknown): ActorError {
  if (err instanceof ActorError) return err;
  if (err instanceof Error) {
    const e = new HandlerError(err.message, err.name);
    Object.defineProperty(e, "cause", { value: err, enumerable: false });
    return e;
  }
  return new HandlerError(`Handler threw a non-error: ${String(err).slice(0, 200)}`, "Error", err);
}

/** Whether `env` calls a handler its entity class declares read-only. */
export function isReadOnly(slot: Slot, env: Envelope): boolean {
  return env.run === undefined && slot.def.readOnly !== undefined && slot.def.readOnly.has(env.h);
}
