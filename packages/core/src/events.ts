// Ownership and membership events, and the fan-out that hands them to each subscriber as an
// AsyncIterable.

/** A partition became ours. */
export interface AcquiredEvent {
  readonly type: "acquired";
  readonly partition: number;
}
/** A partition stopped being ours. */
export interface ReleasedEvent {
  readonly type: "released";
  readonly partition: number;
}
/**
 * The live member set changed (or, first on every stream, what it is now), or only a member's
 * admission front did (a join step: `joined` and `left` empty, placement changed).
 */
export interface MembersEvent {
  readonly type: "members";
  readonly members: readonly string[];
  readonly joined: readonly string[];
  readonly left: readonly string[];
}
/** This node stopped seeing its own heartbeats and owns nothing until it sees them again. */
export interface FencedEvent {
  readonly type: "fenced";
}
/** This node sees its own heartbeats again. */
export interface UnfencedEvent {
  readonly type: "unfenced";
  /**
   * True when the fence was too short for a take-over: every acknowledgement of this node's
   * heartbeats since the lapse came within H of the previous one's send (and, in echo mode, no
   * peer of its view fell silent meanwhile), so no peer can have dropped it (own-lease.ts).
   */
  readonly leaseKept: boolean;
}

export type ShardEvent = AcquiredEvent | ReleasedEvent | MembersEvent | FencedEvent | UnfencedEvent;

interface Subscriber<T> {
  queue: T[];
  wake: (() => void) | undefined;
  done: boolean;
}

/** Fans events out to any number of async-iterating subscribers, each with its own queue. */
export class EventHub<T> {
  readonly #subs = new Set<Subscriber<T>>();
  #closed = false;

  /**
   * A new stream. `initial` is queued atomically with registration, so a stream that opens
   * with a snapshot cannot miss a transition that happens after it.
   */
  subscribe(initial: readonly T[], signal?: AbortSignal): AsyncIterableIterator<T> {
    const sub: Subscriber<T> = { queue: [...initial], wake: undefined, done: this.#closed };
    const finish = () => {
      sub.done = true;
      this.#subs.delete(sub);
      signal?.removeEventListener("abort", finish);
      sub.wake?.();
    };
    if (signal?.aborted) sub.done = true;
    else if (!sub.done) {
      this.#subs.add(sub);
      signal?.addEventListener("abort", finish, { once: true });
    }
    const iterator: AsyncIterableIterator<T> = {
      next: async () => {
        while (sub.queue.length === 0 && !sub.done) {
          await new Promise<void>((resolve) => {
            sub.wake = resolve;
          });
          sub.wake = undefined;
        }
        if (sub.queue.length > 0) return { value: sub.queue.shift() as T, done: false };
        return { value: undefined, done: true };
      },
      return: async () => {
        finish();
        sub.queue.length = 0;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  emit(events: readonly T[]): void {
    if (events.length === 0) return;
    for (const sub of this.#subs) {
      sub.queue.push(...events);
      sub.wake?.();
    }
  }

  /** Ends every stream once its queued events are read. */
  close(): void {
    this.#closed = true;
    for (const sub of this.#subs) {
      sub.done = true;
      sub.wake?.();
    }
    this.#subs.clear();
  }

  get subscriberCount(): number {
    return this.#subs.size;
  }
}
