// A node process that can be paused on the simulated bus, as SIGSTOP pauses a real one: while
// paused, none of its timers fire and nothing reaches its handlers (its subscriptions stay, so
// requests to it time out rather than fail); on resume it handles the deliveries it missed, in
// order, and its overdue timers. libuv does either first after a SIGCONT: I/O first when the
// process was stopped while running JavaScript, timers first when it was stopped waiting.
import {
  type Clock,
  type InboundMessage,
  RequestFailedError,
  type Transport,
  type TransportStatus,
  type TransportSubscription,
} from "@keyhold/core";
import type { SimBus, SimEndpoint } from "@keyhold/testing";

export class Pausable {
  readonly clock: Clock;
  readonly transport: Transport;
  /** The connection underneath (disconnect() cuts the node off, its own echoes included). */
  readonly link: SimEndpoint;
  #paused = false;
  readonly #missed: (() => void)[] = [];
  readonly #overdue = new Map<number, () => void>();

  readonly #ioFirst: boolean;

  constructor(bus: SimBus, name: string, opts: { resume?: "io-first" | "timers-first" } = {}) {
    this.#ioFirst = opts.resume !== "timers-first";
    const inner: SimEndpoint = bus.connect(name);
    this.link = inner;
    const base = bus.clock;
    const handles = new Map<number, unknown>();
    let seq = 0;
    this.clock = {
      now: () => base.now(),
      monoNow: () => base.monoNow(),
      setTimeout: (fn, ms) => {
        const id = ++seq;
        handles.set(
          id,
          base.setTimeout(() => {
            handles.delete(id);
            if (this.#paused) this.#overdue.set(id, fn);
            else fn();
          }, ms),
        );
        return id;
      },
      clearTimeout: (h) => {
        if (typeof h !== "number") return;
        base.clearTimeout(handles.get(h));
        handles.delete(h);
        this.#overdue.delete(h);
      },
    };
    const held = (handler: (m: InboundMessage) => void) => (m: InboundMessage) => {
      if (this.#paused) this.#missed.push(() => handler(m));
      else handler(m);
    };
    const clock = this.clock;
    this.transport = {
      publish: (subject, data) => inner.publish(subject, data),
      subscribe: (subject, handler, opts) => inner.subscribe(subject, held(handler), opts),
      request(subject, data, opts): Promise<Uint8Array> {
        if (!inner.connected) return Promise.reject(new RequestFailedError("disconnected", subject));
        if (!bus.hasListener(subject, inner))
          return Promise.reject(new RequestFailedError("no-responders", subject));
        const inbox = bus.newInbox();
        return new Promise((resolve, reject) => {
          const sub: TransportSubscription = this.subscribe(inbox, (m) => {
            sub.unsubscribe();
            clock.clearTimeout(timer);
            resolve(m.data);
          });
          const timer = clock.setTimeout(() => {
            sub.unsubscribe();
            reject(new RequestFailedError("timeout", subject));
          }, opts.timeout);
          bus.route(inner, subject, data, inbox);
        });
      },
      onStatus: (l: (s: TransportStatus) => void) => inner.onStatus(l),
      flush: () => inner.flush(),
      close: () => inner.close(),
    };
  }

  get paused(): boolean {
    return this.#paused;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    const io = () => {
      for (const f of this.#missed.splice(0)) f();
    };
    if (this.#ioFirst) io();
    const due = [...this.#overdue.values()];
    this.#overdue.clear();
    for (const f of due) f();
    if (!this.#ioFirst) io();
  }
}
