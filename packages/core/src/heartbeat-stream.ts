// The stream behind `leases: "jetstream"`: it captures every member's heartbeats (memory
// storage, the newest one per member subject, replicated across up to 3 NATS servers). A
// member's own lease is renewed by the stream's acknowledgement of its heartbeat, and a member
// about to take over a silent peer reads the peer's newest stored heartbeat through the stream
// leader. Both need the stream's quorum, which is what the side of a NATS split without it lacks.
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Clock, systemClock } from "./clock.js";
import { JetStreamUnavailableError } from "./errors.js";
import {
  askUntilReady,
  isJetStreamAnswer,
  JETSTREAM_READY_MS,
  jetStreamApiError,
} from "./jetstream-ready.js";
import type { Logger } from "./logger.js";

/** What membership needs from the stream; a simulated one stands in for it in tests. */
export interface HeartbeatStream {
  /**
   * Publishes a heartbeat through JetStream (core subscribers hear it as usual); resolves once
   * the stream acknowledged storing it, rejects on an error or after `timeoutMs`.
   */
  publish(subject: string, data: Uint8Array, timeoutMs: number): Promise<void>;
  /**
   * The newest stored heartbeat on `subject`, read through the stream leader (the STREAM.MSG.GET
   * API, never a direct get that a lagging replica could answer); undefined when none is stored.
   */
  last(subject: string, timeoutMs: number): Promise<Uint8Array | undefined>;
}

/** The stream's name for a cluster. */
export function heartbeatStreamName(cluster: string): string {
  return `KEYHOLD_HB_${cluster}`;
}

/** Whether the connection's account has JetStream (its API answers an account info request). */
export async function hasJetStream(nc: NatsConnection): Promise<boolean> {
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: 2000 });
    await jsm.getAccountInfo();
    return true;
  } catch {
    return false;
  }
}

/** The heartbeat stream of a cluster on a NATS connection. */
export class NatsHeartbeatStream implements HeartbeatStream {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #name: string;
  readonly #subjects: string;
  readonly #logger: Logger;
  /** Whether the stream is known to exist (reset when a publish finds no stream). */
  #ensured: Promise<void> | undefined;
  /** Replicas the stream was created with, for reports. */
  replicas = 0;

  private constructor(
    jsm: JetStreamManager,
    js: JetStreamClient,
    cluster: string,
    subjects: string,
    logger: Logger,
  ) {
    this.#jsm = jsm;
    this.#js = js;
    this.#name = heartbeatStreamName(cluster);
    this.#subjects = subjects;
    this.#logger = logger;
  }

  /**
   * Opens (creating when missing) the stream of `cluster` over `subjects` (the member heartbeat
   * wildcard). Rejects with JetStreamUnavailableError when there is no JetStream or the stream
   * cannot be made.
   */
  static async open(
    nc: NatsConnection,
    cluster: string,
    subjects: string,
    logger: Logger,
    clock: Clock = systemClock,
  ): Promise<NatsHeartbeatStream> {
    const apiErr = await jetStreamApiError(nc, { clock, timeoutMs: 5000 });
    if (apiErr !== undefined) {
      throw new JetStreamUnavailableError(
        '`leases: "jetstream"` needs JetStream on the NATS account, but its API did not answer ' +
          `(${apiErr instanceof Error ? apiErr.message : String(apiErr)}). Enable JetStream on the servers (and the account), or use leases: "echo" or "auto".`,
        { cause: apiErr },
      );
    }
    const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: 5000 });
    const s = new NatsHeartbeatStream(jsm, jetstream(nc, { timeout: 5000 }), cluster, subjects, logger);
    const clustered = typeof nc.info?.cluster === "string" && nc.info.cluster.length > 0;
    s.#clustered = clustered;
    // The account API answering does not mean stream requests do: just after a meta leader is
    // elected, stream info and create may still time out or say JetStream is temporarily
    // unavailable. Those are asked again for up to JETSTREAM_READY_MS; a refusal is final.
    const err = await askUntilReady(
      async () => {
        try {
          await s.#ensure(clustered);
        } catch (e) {
          logger.debug(`heartbeat stream ${s.#name} not ready (${String(e)})`);
          throw e;
        }
      },
      {
        clock,
        readyMs: JETSTREAM_READY_MS,
        isFinal: (e) => isJetStreamAnswer(e) || /overlap/i.test(String(e)),
      },
    );
    if (err !== undefined)
      throw new JetStreamUnavailableError(
        `Could not create or open the heartbeat stream ${s.#name}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    s.#ensured = Promise.resolve();
    return s;
  }

  #clustered = false;

  /**
   * Makes sure the stream exists: memory storage, one message per subject, replicas min(3,
   * servers) (tried 3, then 2, then 1 in a NATS cluster; 1 on a single server). An existing
   * stream is used as it is (another member made it).
   */
  async #ensure(clustered: boolean): Promise<void> {
    try {
      const info = await this.#jsm.streams.info(this.#name);
      this.replicas = info.config.num_replicas;
      return;
    } catch (err) {
      if (!(err instanceof Error) || !/stream not found/i.test(err.message)) throw err;
    }
    // A cluster still forming (or with a server down) refuses 3 replicas for a while: keep
    // asking for 3 for a few seconds before settling for fewer (a 2-server NATS cluster).
    const deadline = Date.now() + 4000;
    for (const replicas of clustered ? [3, 2, 1] : [1]) {
      for (;;) {
        const err = await this.#add(replicas);
        if (err === undefined) return;
        const short = /insufficient resources|no suitable peers/i.test(err.message);
        if (replicas === 3 && short && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 250));
          continue;
        }
        if (!short || replicas === 1) throw err;
        break;
      }
    }
  }

  /** Adds the stream with `replicas`; the error when refused (undefined: made, or it exists). */
  async #add(replicas: number): Promise<Error | undefined> {
    try {
      await this.#jsm.streams.add({
        name: this.#name,
        subjects: [this.#subjects],
        storage: StorageType.Memory,
        retention: RetentionPolicy.Limits,
        max_msgs_per_subject: 1,
        num_replicas: replicas,
        allow_direct: false,
        // Heartbeats of members long gone age out; any live member rewrites its own every beat.
        max_age: 3_600_000_000_000,
      });
      this.replicas = replicas;
      const level = replicas === 3 || !this.#clustered ? "info" : "warn";
      this.#logger[level](`created heartbeat stream ${this.#name} with ${replicas} replica(s)`);
      return undefined;
    } catch (err) {
      // Created meanwhile by another member: use it.
      if (err instanceof Error && /already in use/i.test(err.message)) return undefined;
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  async publish(subject: string, data: Uint8Array, timeoutMs: number): Promise<void> {
    if (this.#ensured === undefined) {
      // The stream was lost (memory storage on a single server that restarted): make it again.
      const ensured = this.#ensure(this.#clustered);
      this.#ensured = ensured;
      await ensured.catch((err: unknown) => {
        this.#ensured = undefined;
        throw err;
      });
    }
    try {
      await this.#js.publish(subject, data, { timeout: timeoutMs, expect: { streamName: this.#name } });
    } catch (err) {
      // No stream answered: look for it again before the next beat.
      if (
        !(err instanceof Error) ||
        /no stream|not found|timeout/i.test(err.message) ||
        err.name === "TimeoutError"
      ) {
        this.#ensured = undefined;
      }
      throw err;
    }
  }

  async last(subject: string, timeoutMs: number): Promise<Uint8Array | undefined> {
    const msg = await withTimeout(
      this.#jsm.streams.getMessage(this.#name, { last_by_subj: subject }),
      timeoutMs,
    );
    return msg === null ? undefined : msg.data;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
