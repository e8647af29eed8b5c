// A simulated message bus with NATS semantics that matter to Keyhold (subjects with `*`/`>`
// wildcards, queue groups, request/reply with no-responders), driven by a VirtualClock, with
// fault injection: latency, drops, duplication and disconnection of one endpoint.
import {
  type InboundMessage,
  RequestFailedError,
  type Transport,
  type TransportStatus,
  type TransportSubscription,
} from "@keyhold/core";
import type { VirtualClock } from "./virtual-clock.js";

interface Sub {
  readonly endpoint: SimEndpoint;
  readonly pattern: string[];
  readonly queue: string | undefined;
  readonly handler: (msg: InboundMessage) => void;
}

export interface SimBusOptions {
  /** Delivery delay in virtual ms. @default 1 */
  readonly latencyMs?: number;
  /** Extra random delay, 0..jitterMs, which reorders messages. @default 0 */
  readonly jitterMs?: number;
  /** Probability of duplicating a delivery. @default 0 */
  readonly duplicate?: number;
  /** Deterministic randomness for jitter and duplicates. @default a fixed-seed generator */
  readonly random?: () => number;
  /** Most bytes of one message; a larger publish throws, as nats.js does. @default 1048576 */
  readonly maxPayload?: number;
}

function matches(pattern: string[], subject: string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === ">") return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== "*" && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}

/** A small deterministic PRNG (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class SimBus {
  readonly clock: VirtualClock;
  readonly #subs = new Set<Sub>();
  readonly #opts: Required<SimBusOptions>;
  #inbox = 0;
  /** Partition group of each named endpoint; unnamed ones are in group 0. Empty = healed. */
  readonly #groups = new Map<string, number>();
  /** Messages delivered, for traffic assertions. */
  delivered = 0;

  constructor(clock: VirtualClock, opts: SimBusOptions = {}) {
    this.clock = clock;
    this.#opts = {
      latencyMs: opts.latencyMs ?? 1,
      jitterMs: opts.jitterMs ?? 0,
      duplicate: opts.duplicate ?? 0,
      random: opts.random ?? seededRandom(1),
      maxPayload: opts.maxPayload ?? 1024 * 1024,
    };
  }

  /** A new endpoint (one node's connection). */
  connect(name: string): SimEndpoint {
    return new SimEndpoint(this, name);
  }

  /** Splits endpoints (by name) into groups that cannot reach each other; unnamed ones join the first. */
  partition(...groups: readonly (readonly string[])[]): void {
    this.#groups.clear();
    groups.forEach((g, i) => {
      for (const name of g) this.#groups.set(name, i);
    });
  }

  /** Ends a partition. */
  heal(): void {
    this.#groups.clear();
  }

  #reaches(a: SimEndpoint, b: SimEndpoint): boolean {
    return (this.#groups.get(a.name) ?? 0) === (this.#groups.get(b.name) ?? 0);
  }

  /** @internal */
  addSub(sub: Sub): () => void {
    this.#subs.add(sub);
    return () => this.#subs.delete(sub);
  }

  /** The most bytes of one message. */
  get maxPayload(): number {
    return this.#opts.maxPayload;
  }

  /** @internal */
  newInbox(): string {
    return `_INBOX.sim.${++this.#inbox}`;
  }

  /** @internal Whether anyone connected would receive `subject`. */
  hasListener(subject: string, from?: SimEndpoint): boolean {
    const parts = subject.split(".");
    for (const s of this.#subs) {
      if (!s.endpoint.connected || (from && !this.#reaches(from, s.endpoint))) continue;
      if (matches(s.pattern, parts)) return true;
    }
    return false;
  }

  /** @internal Routes one published message to current subscribers after the latency. */
  route(from: SimEndpoint, subject: string, data: Uint8Array, reply: string | undefined): void {
    if (data.length > this.#opts.maxPayload)
      throw new Error(`message of ${data.length} bytes exceeds max_payload ${this.#opts.maxPayload}`);
    if (!from.connected) return;
    const parts = subject.split(".");
    const plain: Sub[] = [];
    const groups = new Map<string, Sub[]>();
    for (const s of this.#subs) {
      if (!matches(s.pattern, parts) || !this.#reaches(from, s.endpoint)) continue;
      if (s.queue === undefined) plain.push(s);
      else {
        const g = groups.get(s.queue) ?? [];
        g.push(s);
        groups.set(s.queue, g);
      }
    }
    for (const g of groups.values()) {
      const live = g.filter((s) => s.endpoint.connected);
      const pick = live[Math.floor(this.#opts.random() * live.length)];
      if (pick) plain.push(pick);
    }
    const copy = data.slice();
    for (const s of plain) {
      const times = this.#opts.random() < this.#opts.duplicate ? 2 : 1;
      for (let i = 0; i < times; i++) {
        const delay = this.#opts.latencyMs + Math.floor(this.#opts.random() * (this.#opts.jitterMs + 1));
        this.clock.setTimeout(() => {
          if (!s.endpoint.connected || !this.#subs.has(s) || !this.#reaches(from, s.endpoint)) return;
          this.delivered++;
          s.handler({ subject, data: copy, reply });
        }, delay);
      }
    }
  }
}

/** One node's connection to a SimBus; a Transport. */
export class SimEndpoint implements Transport {
  readonly name: string;
  readonly #bus: SimBus;
  readonly #offs = new Set<() => void>();
  readonly #listeners = new Set<(s: TransportStatus) => void>();
  #connected = true;
  #closed = false;

  constructor(bus: SimBus, name: string) {
    this.#bus = bus;
    this.name = name;
  }

  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  /** Cuts this endpoint off: nothing in or out until reconnect(). */
  disconnect(): void {
    if (!this.#connected) return;
    this.#connected = false;
    for (const l of this.#listeners) l("disconnected");
  }

  reconnect(): void {
    if (this.#connected) return;
    this.#connected = true;
    for (const l of this.#listeners) l("reconnected");
  }

  publish(subject: string, data: Uint8Array): void {
    this.#bus.route(this, subject, data, undefined);
  }

  subscribe(
    subject: string,
    handler: (msg: InboundMessage) => void,
    opts?: { queue?: string },
  ): TransportSubscription {
    const off = this.#bus.addSub({
      endpoint: this,
      pattern: subject.split("."),
      queue: opts?.queue,
      handler,
    });
    this.#offs.add(off);
    return {
      unsubscribe: () => {
        off();
        this.#offs.delete(off);
      },
    };
  }

  request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<Uint8Array> {
    if (!this.connected) return Promise.reject(new RequestFailedError("disconnected", subject));
    if (!this.#bus.hasListener(subject, this))
      return Promise.reject(new RequestFailedError("no-responders", subject));
    const inbox = this.#bus.newInbox();
    return new Promise((resolve, reject) => {
      const clock = this.#bus.clock;
      const sub = this.subscribe(inbox, (m) => {
        sub.unsubscribe();
        clock.clearTimeout(timer);
        resolve(m.data);
      });
      const timer = clock.setTimeout(() => {
        sub.unsubscribe();
        reject(new RequestFailedError("timeout", subject));
      }, opts.timeout);
      this.#bus.route(this, subject, data, inbox);
    });
  }

  inbox(): string {
    return this.#bus.newInbox();
  }

  maxPayload(): number {
    return this.#bus.maxPayload;
  }

  onStatus(listener: (s: TransportStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.#closed = true;
    for (const off of this.#offs) off();
    this.#offs.clear();
    this.#listeners.clear();
  }
}
