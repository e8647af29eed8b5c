// The raw NATS request/reply the replication benchmark holds asks to: a responder in a child
// process (echo-child.ts) and two requesters on a plain nats.js connection in the bench process.
// nc.request() builds a timer, a deferred and error objects per request, and costs the bench
// process more CPU per request than a Keyhold ask does (NatsTransport shares one reply
// subscription and one timeout sweep); so the ceiling is `RawRequester`, the same pattern with
// nothing else: publish with a reply subject under one wildcard subscription.
import { fileURLToPath } from "node:url";
import { type RunningChild, spawnTs } from "@keyhold/testing";
import { createInbox, type NatsConnection, type Subscription } from "@nats-io/transport-node";

/** Starts the echo responder; resolves once it is subscribed. */
export async function spawnEcho(servers: string, subject: string, reply: Uint8Array): Promise<RunningChild> {
  const child = spawnTs(fileURLToPath(new URL("./echo-child.ts", import.meta.url)), [
    servers,
    subject,
    Buffer.from(reply).toString("hex"),
  ]);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      child.process.on("message", (m: { type: string; message?: string }) => {
        if (m.type === "ready") resolve();
        else if (m.type === "error") reject(new Error(`the echo process failed to start: ${m.message}`));
      });
      void child.exited.then((code) =>
        reject(new Error(`the echo process exited with ${code} before ready:\n${child.logs().join("\n")}`)),
      );
      timer = setTimeout(() => reject(new Error("the echo process did not start within 30 s")), 30_000);
    });
  } catch (err) {
    child.process.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return child;
}

interface Pending {
  readonly resolve: (data: Uint8Array) => void;
  readonly reject: (err: Error) => void;
  readonly deadline: number;
}

/** Requests over one wildcard reply subscription, timed out by one sweep: raw NATS, no framework. */
export class RawRequester {
  readonly #nc: NatsConnection;
  readonly #inbox = createInbox();
  readonly #pending = new Map<string, Pending>();
  readonly #sub: Subscription;
  readonly #sweep: NodeJS.Timeout;
  readonly #timeoutMs: number;
  #seq = 0;

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    const prefix = this.#inbox.length + 1;
    this.#sub = nc.subscribe(`${this.#inbox}.*`, {
      callback: (err, msg) => {
        if (err) return;
        const id = msg.subject.slice(prefix);
        const p = this.#pending.get(id);
        if (!p) return;
        this.#pending.delete(id);
        p.resolve(msg.data);
      },
    });
    this.#sweep = setInterval(() => {
      const now = Date.now();
      for (const [id, p] of this.#pending) {
        if (p.deadline > now) continue;
        this.#pending.delete(id);
        p.reject(new Error("echo request timed out"));
      }
    }, 100);
    this.#sweep.unref();
  }

  request(subject: string, data: Uint8Array): Promise<Uint8Array> {
    const id = (this.#seq++).toString(36);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, deadline: Date.now() + this.#timeoutMs });
      this.#nc.publish(subject, data, { reply: `${this.#inbox}.${id}` });
    });
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#sub.unsubscribe();
  }
}
