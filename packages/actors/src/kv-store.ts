// Durable entity state in a NATS JetStream key-value bucket. Each entity is one key,
// `<type>.<base64url(key)>`; its value is msgpack { s, ver, ids, rem, acq } (ids: the last asks
// applied; acq: the writer's epoch, its fencing token). Saves are `create` (first write) or
// `update` at the last seen revision, so a stale owner's write is refused by the server. The
// bucket allows no direct reads: a load is answered by the stream's leader, so a new owner
// never activates from a replica that has not caught up with the last acknowledged write.

import { InvalidOptionError, NatsTransport, type Transport } from "@keyhold/core";
import { type KV, Kvm } from "@nats-io/kv";
import { Packr } from "msgpackr";
import { StoreConflictError, StoreError } from "./errors.js";
import { leanPut, WRONG_LAST_SEQUENCE } from "./kv-put.js";
import { decodeReminders } from "./reminders.js";
import type {
  ReminderIndexEntry,
  StateEntry,
  StateStore,
  StoredReminderIndex,
  StoredState,
  StoreFactory,
} from "./store.js";
import type { RecentAsk } from "./wire.js";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export interface NatsKvStoreOptions {
  /** Bucket name: letters, digits, `_`, `-`. Created when missing. */
  readonly bucket: string;
  /** Copies of the bucket in a NATS cluster (JetStream replicas, 1..5). @default 1 */
  readonly replicas?: number;
  /** How long one store call may take. @default 5000 */
  readonly timeoutMs?: number;
}

/** A StoreFactory for a JetStream KV bucket on Sharding's own NATS connection. */
export function natsKvStore(options: NatsKvStoreOptions): StoreFactory {
  if (!options || typeof options.bucket !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(options.bucket)) {
    throw new InvalidOptionError("store.bucket", "1-64 letters, digits, `_` or `-`", options?.bucket);
  }
  const replicas = options.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
    throw new InvalidOptionError("store.replicas", "an integer from 1 to 5", options.replicas);
  }
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
    throw new InvalidOptionError("store.timeoutMs", "an integer >= 1", options.timeoutMs);
  }
  return {
    kind: "nats-kv",
    async open({ connection }) {
      if (!connection)
        throw new StoreError("natsKvStore needs Sharding to run over NATS (servers or connection)");
      try {
        const kv = await createBucket(new Kvm(connection), options.bucket, replicas);
        return new NatsKvStore(kv, timeoutMs, new NatsTransport(connection, { owned: false }));
      } catch (err) {
        throw new StoreError(
          `Cannot open KV bucket ${options.bucket}: ${String(err)} (is JetStream enabled?)`,
          {
            cause: err,
          },
        );
      }
    },
  };
}

/**
 * Creates (or binds to) the bucket. A replicated bucket on a loaded NATS cluster can take longer
 * than one JetStream API timeout to be placed, while the create goes on in the cluster; the create
 * is idempotent for the same config, so a timeout is retried, twice at most. Any other error
 * (no JetStream, a bucket with another config) fails at once.
 */
export async function createBucket(kvm: Pick<Kvm, "create">, bucket: string, replicas: number): Promise<KV> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await kvm.create(bucket, { replicas, history: 1, allow_direct: false });
    } catch (err) {
      if (attempt >= 3 || (err as { name?: unknown })?.name !== "TimeoutError") throw err;
    }
  }
}

function kvKey(type: string, key: string): string {
  return `${type}.${Buffer.from(key, "utf8").toString("base64url") || "_"}`;
}

/** The subject a write of key `k` goes to (nats.js's Bucket knows the bucket's prefixes). */
type SubjectForKey = (k: string, edit: boolean) => string;

class NatsKvStore implements StateStore {
  readonly #kv: KV;
  readonly #timeoutMs: number;
  /** Updates go out as lean puts over this (kv-put.ts); its reply subscription is its own. */
  readonly #transport: Transport;
  readonly #subjectOf: SubjectForKey | undefined;

  constructor(kv: KV, timeoutMs: number, transport: Transport) {
    this.#kv = kv;
    this.#timeoutMs = timeoutMs;
    this.#transport = transport;
    const f = (kv as { subjectForKey?: unknown }).subjectForKey;
    this.#subjectOf = typeof f === "function" ? (f as SubjectForKey).bind(kv) : undefined;
  }

  async load(type: string, key: string): Promise<StoredState | undefined> {
    let entry: Awaited<ReturnType<KV["get"]>>;
    try {
      entry = await this.#kv.get(kvKey(type, key));
    } catch (err) {
      throw new StoreError(`Loading ${type}/${key} failed: ${String(err)}`, { cause: err });
    }
    if (entry?.operation !== "PUT" || entry.value.length === 0) return undefined;
    let v: { s?: unknown; ver?: unknown; ids?: unknown; rem?: unknown; acq?: unknown };
    try {
      v = packr.unpack(entry.value) as typeof v;
    } catch (err) {
      throw new StoreError(`Stored state of ${type}/${key} is not msgpack`, { cause: err });
    }
    const version = typeof v.ver === "number" && Number.isSafeInteger(v.ver) ? v.ver : 0;
    const recent = Array.isArray(v.ids) ? (v.ids as RecentAsk[]) : undefined;
    const rem = v.rem === undefined ? undefined : decodeReminders(v.rem);
    const acq = typeof v.acq === "number" && Number.isSafeInteger(v.acq) && v.acq > 0 ? v.acq : undefined;
    return { state: v.s, version, revision: entry.revision, recent, rem, acq };
  }

  async save(type: string, key: string, entry: StateEntry, expected: number | undefined): Promise<number> {
    const data = packr.pack({
      s: entry.state,
      ver: entry.version,
      ids: entry.recent,
      rem: entry.rem,
      ...(entry.acq ? { acq: entry.acq } : {}),
    });
    return this.#put(kvKey(type, key), data, expected, type, key);
  }

  /** A create (no expected revision) or an update at `expected`; a lost race is StoreConflictError. */
  async #put(
    k: string,
    data: Uint8Array,
    expected: number | undefined,
    type: string,
    key: string,
  ): Promise<number> {
    // A revision is a stream sequence (>= 1); the header with 0 would mean "no entry yet".
    if (expected !== undefined && expected > 0 && this.#subjectOf)
      return this.#update(this.#subjectOf(k, true), data, expected, type, key);
    try {
      // A create stays nats.js's: it also handles a key whose last entry is a delete marker.
      return expected === undefined
        ? await this.#kv.create(k, data)
        : await this.#kv.update(k, data, expected, this.#timeoutMs);
    } catch (err) {
      const text = String((err as Error)?.message ?? err);
      // JetStream refuses a write whose expected last sequence is stale (err 10071), and a
      // create of an existing key: both mean another writer got there first.
      if (/wrong last sequence|key exists|10071/i.test(text)) throw new StoreConflictError(type, key);
      throw new StoreError(`Saving ${type}/${key} failed: ${text}`, { cause: err });
    }
  }

  /** An update at revision `expected` as a lean put (kv-put.ts). */
  async #update(
    subject: string,
    data: Uint8Array,
    expected: number,
    type: string,
    key: string,
  ): Promise<number> {
    let ack: Awaited<ReturnType<typeof leanPut>>;
    try {
      ack = await leanPut(this.#transport, subject, data, expected, this.#timeoutMs);
    } catch (err) {
      throw new StoreError(`Saving ${type}/${key} failed: ${String((err as Error)?.message ?? err)}`, {
        cause: err,
      });
    }
    if (ack.seq !== undefined) return ack.seq;
    // Another writer got there first (the same refusal kv.update reports).
    if (ack.error.code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(ack.error.text))
      throw new StoreConflictError(type, key);
    throw new StoreError(`Saving ${type}/${key} failed: ${ack.error.text}`);
  }

  // A partition's reminder index is the key `=rem.<p>`: `=` cannot start an entity type, so it
  // never collides with `<type>.<key>`.
  async loadReminderIndex(p: number): Promise<StoredReminderIndex | undefined> {
    let entry: Awaited<ReturnType<KV["get"]>>;
    try {
      entry = await this.#kv.get(`=rem.${p}`);
    } catch (err) {
      throw new StoreError(`Loading the reminder index of partition ${p} failed: ${String(err)}`, {
        cause: err,
      });
    }
    if (entry?.operation !== "PUT" || entry.value.length === 0) return undefined;
    const v = packr.unpack(entry.value) as unknown;
    const entries = Array.isArray(v)
      ? (v as unknown[]).filter(
          (e): e is ReminderIndexEntry =>
            Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && typeof e[1] === "string",
        )
      : [];
    return { entries, revision: entry.revision };
  }

  saveReminderIndex(
    p: number,
    entries: readonly ReminderIndexEntry[],
    expected: number | undefined,
  ): Promise<number> {
    return this.#put(`=rem.${p}`, packr.pack(entries), expected, "reminder index", String(p));
  }

  /**
   * Releases the lean puts' reply subscription (a write still waiting fails as disconnected);
   * the bucket handle lives on Sharding's connection, which Sharding closes.
   */
  async close(): Promise<void> {
    await this.#transport.close();
  }
}
