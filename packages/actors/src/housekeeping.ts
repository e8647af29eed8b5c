// A hosting node's periodic chores, every handoffTimeoutMs: outboxes no new owner claimed
// expire, and replica copies this node should no longer hold are pruned.
import type { Clock } from "@keyhold/core";
import type { Background } from "./background.js";
import { OUTBOX_RETENTION_FACTOR, type Outbox } from "./outbox.js";
import type { Replicator } from "./replication.js";

export class Housekeeping {
  readonly #clock: Clock;
  readonly #everyMs: number;
  readonly #outbox: Outbox;
  readonly #replicator: Replicator | undefined;
  readonly #background: Background;
  #timer: unknown;

  constructor(a: {
    clock: Clock;
    everyMs: number;
    outbox: Outbox;
    replicator: Replicator | undefined;
    background: Background;
  }) {
    this.#clock = a.clock;
    this.#background = a.background;
    this.#everyMs = a.everyMs;
    this.#outbox = a.outbox;
    this.#replicator = a.replicator;
  }

  /** Arms the next round; each round arms the one after it. The work runs on the background queue. */
  start(): void {
    const every = this.#everyMs;
    this.#timer = this.#clock.setTimeout(() => {
      this.#background.spawn("maintenance", () => {
        this.#outbox.expire(every * OUTBOX_RETENTION_FACTOR);
        this.#replicator?.prune();
      });
      this.start();
    }, every);
  }

  close(): void {
    this.#clock.clearTimeout(this.#timer);
  }
}
