// Shared fixtures for the multi-process @keyhold/core tests: short leases, a fleet of node
// processes that is always killed, and the checks several scenarios repeat.
import { randomUUID } from "node:crypto";
import { Ring } from "@keyhold/core";
import {
  NodeProcess,
  type NodeProcessOptions,
  type NodeState,
  type TimedEvent,
  waitFor,
} from "@keyhold/testing";
import { expect } from "vitest";

// Short leases keep the suite fast (the defaults are 2000/6000/5000 ms). The TTL is five beats
// long, so one late beat on a loaded machine expires nobody, and the own lease (ttl - heartbeat
// = 800 ms) outlasts the stalls of a loaded 2-core machine (100 / 400 let nodes fence mid-test).
export const HEARTBEAT_MS = 200;
export const TTL_MS = 1000;
export const SKEW_MS = 200;
export const RING_SIZE = 64;
export const LEASE = { ringSize: RING_SIZE, heartbeatMs: HEARTBEAT_MS, ttlMs: TTL_MS, skewMs: SKEW_MS };

/** Bounds for condition-based waits: generous, because two cores are shared with other runs. */
export const SETTLE_MS = 15_000;

export const ALL_PARTITIONS = Array.from({ length: RING_SIZE }, (_, p) => p);

/** A cluster name no other test (or stray process) shares. */
export function clusterName(): string {
  return `t${randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

export function keys(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `key-${i}`);
}

/** Node processes that are SIGKILLed on dispose, whatever the test did to them before. */
export class Fleet implements AsyncDisposable {
  readonly #nodes: NodeProcess[] = [];

  async spawn(options: NodeProcessOptions): Promise<NodeProcess> {
    const node = await NodeProcess.spawn(options);
    this.#nodes.push(node);
    return node;
  }

  /**
   * Spawns in parallel. Waits for every spawn to settle before throwing, so a process that
   * came up after another failed is still registered and killed on dispose.
   */
  async spawnAll(list: readonly NodeProcessOptions[]): Promise<NodeProcess[]> {
    const results = await Promise.allSettled(list.map((o) => this.spawn(o)));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    return results.map((r) => (r as PromiseFulfilledResult<NodeProcess>).value);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled(this.#nodes.map((n) => n.kill()));
  }
}

/** Options for `count` member processes named n0, n1, ... on `servers`. */
export function memberOptions(cluster: string, servers: string | readonly string[], count: number) {
  return Array.from(
    { length: count },
    (_, i): NodeProcessOptions => ({
      servers: typeof servers === "string" ? servers : [...servers],
      cluster,
      nodeId: `n${i}`,
      ...LEASE,
    }),
  );
}

export function states(nodes: readonly NodeProcess[]): Promise<NodeState[]> {
  return Promise.all(nodes.map((n) => n.state()));
}

/** Waits until every node sees exactly `members` (sorted) and none of them is fenced. */
export async function waitForMembers(
  nodes: readonly NodeProcess[],
  members: readonly string[],
  timeout = SETTLE_MS,
): Promise<NodeState[]> {
  const want = [...members].sort();
  // Nodes join (and leave) step by step by default: wait for the last step too, until every
  // node owns exactly what HRW over the members gives it (observers: nothing).
  const ring = new Ring(want, RING_SIZE);
  let last: NodeState[] = [];
  await waitFor(
    async () => {
      last = await states(nodes);
      return last.every(
        (s) =>
          !s.fenced &&
          sameList(s.members, want) &&
          sameList(s.owned.map(String), ring.partitionsOf(s.id).map(String)),
      );
    },
    { timeout, interval: 20, message: `members never became ${want.join(",")}` },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; last views: ${summarize(last)}`, { cause: err });
  });
  return last;
}

/**
 * Asserts the ownership the members report is a partition of the ring: disjoint, covering
 * every partition, and exactly what HRW over the common member list gives each of them.
 */
export function expectPartitionsCovered(views: readonly NodeState[]): void {
  const first = views[0];
  expect(first).toBeDefined();
  const ring = new Ring(first!.members, RING_SIZE);
  const seen = new Map<number, string>();
  for (const v of views) {
    expect(v.members).toEqual(first!.members);
    expect(v.owned).toEqual(ring.partitionsOf(v.id));
    for (const p of v.owned) {
      expect(seen.get(p), `partition ${p} owned by ${seen.get(p)} and ${v.id}`).toBeUndefined();
      seen.set(p, v.id);
    }
  }
  expect([...seen.keys()].sort((a, b) => a - b)).toEqual(ALL_PARTITIONS);
}

/**
 * Asks every node (members and observers alike) to place `keyList` and asserts they all give
 * the same live owner for every key, the one HRW over `members` gives.
 */
export async function expectAgreement(
  nodes: readonly NodeProcess[],
  members: readonly string[],
  keyList: readonly string[],
): Promise<void> {
  const ring = new Ring(members, RING_SIZE);
  const expected = keyList.map((k) => ring.place(k) ?? null);
  const answers = await Promise.all(nodes.map((n) => n.place(keyList)));
  for (const [i, a] of answers.entries()) {
    const wrong = a.findIndex((owner, k) => owner !== expected[k]);
    expect(wrong, `${nodes[i]?.id} places ${keyList[wrong]} on ${a[wrong]}, not ${expected[wrong]}`).toBe(-1);
  }
  // Every member got some of the keys: a ring that sent everything to one node would pass the above.
  expect(new Set(expected)).toEqual(new Set(members));
}

/**
 * The owned set a stream of events implies. Throws on an inconsistent stream: acquiring a
 * partition already held, or releasing one not held.
 */
export function replayOwned(events: readonly TimedEvent[], from = 0, start: Iterable<number> = []): number[] {
  const owned = new Set(start);
  for (const { event } of events.slice(from)) {
    if (event.type === "acquired") {
      if (owned.has(event.partition)) throw new Error(`acquired ${event.partition} twice`);
      owned.add(event.partition);
    } else if (event.type === "released") {
      if (!owned.delete(event.partition)) throw new Error(`released ${event.partition} it did not own`);
    }
  }
  return [...owned].sort((a, b) => a - b);
}

/** Partitions acquired / released in `events` from index `from` on. */
export function transitions(events: readonly TimedEvent[], from = 0) {
  const acquired: number[] = [];
  const released: number[] = [];
  for (const { event } of events.slice(from)) {
    if (event.type === "acquired") acquired.push(event.partition);
    else if (event.type === "released") released.push(event.partition);
  }
  return { acquired: acquired.sort((a, b) => a - b), released: released.sort((a, b) => a - b) };
}

/** The child-side time at which `node` first reported `id` as having left, from index `from` on. */
export function leftAt(node: NodeProcess, id: string, from = 0): number | undefined {
  return node.events.slice(from).find(({ event }) => event.type === "members" && event.left.includes(id))?.at;
}

/** Whether a process with this pid still exists (signal 0 only checks). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function summarize(views: readonly NodeState[]): string {
  return views
    .map((v) => `${v.id}: members=[${v.members.join(",")}] owned=${v.owned.length} fenced=${v.fenced}`)
    .join("; ");
}

/**
 * Polls a node's state every few ms until stopped, keeping every sample, so a state that only
 * lasts between two condition checks still gets seen.
 */
export function sample(node: NodeProcess): { readonly samples: NodeState[]; stop(): Promise<NodeState[]> } {
  const samples: NodeState[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      samples.push(await node.state());
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** The most partitions the owned set held at any point of `events` from index `from` on. */
export function mostOwned(events: readonly TimedEvent[], from: number, start: Iterable<number>): number {
  const owned = new Set(start);
  let most = owned.size;
  for (const { event } of events.slice(from)) {
    if (event.type === "acquired") owned.add(event.partition);
    else if (event.type === "released") owned.delete(event.partition);
    most = Math.max(most, owned.size);
  }
  return most;
}
