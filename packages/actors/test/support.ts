// Shared fixtures for actor tests on the simulated bus: entity classes and a node starter that
// drives the virtual clock while start() waits for its own heartbeat.
import { Entity, Sharding, type ShardingOptions } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import type { SimBus } from "@keyhold/testing";

export const HB = 100;
export const TTL = 300;
/** handoffTimeoutMs of every node startOn starts (unless overridden). */
export const HANDOFF_MS = 2000;

export class Counter extends Entity<{ n: number }> {
  static readonly type = "counter";
  static activations = 0;
  static passivations = 0;
  initialState() {
    return { n: 0 };
  }
  override onActivate() {
    Counter.activations++;
  }
  override onPassivate() {
    Counter.passivations++;
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
  get() {
    return this.state.n;
  }
  fail(message: string): number {
    throw new RangeError(message);
  }
  echo(x: unknown) {
    return x;
  }
  leak() {
    return new Map([[1, 2]]);
  }
}

export async function startOn(
  bus: SimBus,
  id: string,
  extra: Partial<ShardingOptions> = {},
  client = false,
): Promise<Sharding> {
  let settled = false;
  const opts: ShardingOptions = {
    transport: bus.connect(id),
    clock: bus.clock,
    cluster: "t",
    nodeId: id,
    heartbeatMs: HB,
    ttlMs: TTL,
    skewMs: 200,
    logger: silentLogger,
    entities: [Counter],
    handoffTimeoutMs: HANDOFF_MS,
    ...extra,
  };
  const p = (client ? Sharding.connect(opts) : Sharding.start(opts)).finally(() => {
    settled = true;
  });
  p.catch(() => {});
  while (!settled) await bus.clock.advance(1);
  const s = await p;
  await bus.clock.advance(HB);
  // Joining step by step is the default (joinStepPartitions "auto"): return once it owns all it wins.
  for (let t = 0; t < 100 && s.node.joinFront !== undefined; t++) await bus.clock.advance(HB);
  return s;
}

/** Resolves `promise` while advancing the virtual clock in small steps. */
export async function drive<T>(bus: SimBus, promise: Promise<T>, stepMs = 1, maxMs = 60_000): Promise<T> {
  let done = false;
  const guarded = promise.finally(() => {
    done = true;
  });
  guarded.catch(() => {});
  for (let t = 0; !done && t < maxMs; t += stepMs) await bus.clock.advance(stepMs);
  return guarded;
}

/** Reads whether `p` has settled yet, either way. */
export function watch(p: Promise<unknown>): () => boolean {
  let settled = false;
  const done = () => {
    settled = true;
  };
  void p.then(done, done);
  return () => settled;
}
