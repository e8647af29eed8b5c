// The gate in front of one TestNode: its timers (GatedClock) and its messages, replies and
// status events (GatedTransport) run through it, so the cluster can pause the node like SIGSTOP
// or freeze it for good like SIGKILL.
import type { Clock, Transport, TransportStatus, TransportSubscription } from "@keyhold/core";
import type { TestNodeState } from "./test-node.js";

/** Runs or holds back everything that reaches one node's code (timers, messages, replies). */
export class Gate {
  state: TestNodeState = "running";
  readonly #held: (() => void)[] = [];

  run(fn: () => void): void {
    if (this.state === "crashed") return;
    if (this.state === "paused") this.#held.push(fn);
    else fn();
  }

  resume(): void {
    this.state = "running";
    for (const fn of this.#held.splice(0)) fn();
  }

  drop(): void {
    this.#held.length = 0;
  }
}

/** A clock or transport whose callbacks into the node pass the gate. */
abstract class Gated<T> {
  protected readonly inner: T;
  protected readonly gate: Gate;
  constructor(inner: T, gate: Gate) {
    this.inner = inner;
    this.gate = gate;
  }
}

export class GatedClock extends Gated<Clock> implements Clock {
  now(): number {
    return this.inner.now();
  }
  monoNow(): number {
    return this.inner.monoNow();
  }
  setTimeout(fn: () => void, ms: number): unknown {
    return this.inner.setTimeout(() => this.gate.run(fn), ms);
  }
  clearTimeout(handle: unknown): void {
    this.inner.clearTimeout(handle);
  }
}

export class GatedTransport extends Gated<Transport> implements Transport {
  publish(subject: string, data: Uint8Array): void {
    this.gate.run(() => this.inner.publish(subject, data));
  }
  subscribe(
    subject: string,
    handler: (msg: { subject: string; data: Uint8Array; reply?: string | undefined }) => void,
    opts?: { queue?: string },
  ): TransportSubscription {
    return this.inner.subscribe(subject, (m) => this.gate.run(() => handler(m)), opts);
  }
  request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.gate.run(() => {
        this.inner.request(subject, data, opts).then(
          (v) => this.gate.run(() => resolve(v)),
          (e: unknown) => this.gate.run(() => reject(e)),
        );
      });
    });
  }
  onStatus(listener: (status: TransportStatus) => void): () => void {
    return this.inner.onStatus((s) => this.gate.run(() => listener(s)));
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
