// Shared setup for multi-process entity tests: a NATS server, node processes hosting the
// fixture entities, and a client in the test process.
import { fileURLToPath } from "node:url";
import { type Entity, type EntityClass, Sharding, type ShardingOptions } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { ShardingProcess, type ShardingProcessOptions } from "@keyhold/testing";
import { Counter } from "../fixtures/entities.js";

export const ENTITIES = fileURLToPath(new URL("../fixtures/entities.ts", import.meta.url));
// 200 / 1000 ms: the own lease (ttl - heartbeat = 800 ms) outlasts the stalls of a loaded 2-core
// machine, where 100 / 400 let nodes fence and re-activate entities mid-test.
export const LEASE = { heartbeatMs: 200, ttlMs: 1000, skewMs: 200 } as const;

export function nodeOptions(
  url: string,
  cluster: string,
  extra: Partial<ShardingProcessOptions> = {},
): ShardingProcessOptions {
  return { servers: url, cluster, ...LEASE, handoffTimeoutMs: 5000, ...extra };
}

export function spawnNode(url: string, cluster: string, extra: Partial<ShardingProcessOptions> = {}) {
  return ShardingProcess.spawn(nodeOptions(url, cluster, extra), ENTITIES);
}

export function connectClient(url: string | string[], cluster: string, extra: Partial<ShardingOptions> = {}) {
  return Sharding.connect({
    servers: url,
    cluster,
    ...LEASE,
    entities: [Counter],
    logger: silentLogger,
    ...extra,
  });
}

/** A fixture counter class: anything with an `add(by)` handler. */
type AddCounter = EntityClass<Entity<unknown> & { add(by: number): number }>;

/**
 * Sends increments to `keys` round-robin with `concurrency` asks in flight until stopped,
 * counting acknowledged and failed asks per key.
 */
export function load(client: Sharding, keys: readonly string[], concurrency = 32, cls: AddCounter = Counter) {
  const acked = new Map<string, number>();
  const attempted = new Map<string, number>();
  const errors: string[] = [];
  let stop = false;
  let i = 0;
  const worker = async () => {
    while (!stop) {
      const k = keys[i++ % keys.length]!;
      attempted.set(k, (attempted.get(k) ?? 0) + 1);
      try {
        await client.ref(cls, k).add(1);
        acked.set(k, (acked.get(k) ?? 0) + 1);
      } catch (err) {
        errors.push(String(err));
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    acked,
    attempted,
    errors,
    get total() {
      let n = 0;
      for (const v of acked.values()) n += v;
      return n;
    },
    async stop() {
      stop = true;
      await Promise.all(workers);
    },
  };
}
