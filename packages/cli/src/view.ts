// What each command shows, computed from the nodes' reports alone: pure functions, so the
// JSON shapes documented in docs/reference/cli.md are defined here and nowhere else.
import { type AdmissionCaps, type ClusterConfig, HASH_VERSION, type NodeReport, Ring } from "@keyhold/core";
import { HashVersionError } from "./errors.js";

export interface MemberView {
  readonly id: string;
  /** Whether this member answered the request itself. */
  readonly answered: boolean;
  /** The freshest lease age any node reported for it, ms; null when none did. */
  readonly leaseAgeMs: number | null;
  /** Its own report; null when it did not answer. */
  readonly fenced: boolean | null;
  readonly owned: number | null;
  readonly uptimeMs: number | null;
  readonly drainAllowed: boolean | null;
}

export interface MembersView {
  readonly cluster: string;
  readonly config: ClusterConfig;
  readonly members: readonly MemberView[];
  /** Members that left gracefully, recently. */
  readonly departed: readonly string[];
}

const sorted = (s: Iterable<string>) => [...s].sort();

/** Every member any node sees, plus every node that answered (a fenced node sees nobody). */
function allMembers(reports: readonly NodeReport[]): string[] {
  const ids = new Set<string>();
  for (const r of reports) {
    ids.add(r.id);
    for (const m of r.members) ids.add(m);
  }
  return sorted(ids);
}

/** The members live in the answering nodes' views: placement is computed over these. */
function liveMembers(reports: readonly NodeReport[]): string[] {
  const ids = new Set<string>();
  for (const r of reports) for (const m of r.members) ids.add(m);
  return sorted(ids);
}

/**
 * The admission fronts to place with (members joining or leaving step by step): for each live
 * member, the front its peers report from its heartbeats (the first answering peer, by id, that
 * sees it), or its own report when no peer answered; absent means uncapped.
 */
export function frontsOf(reports: readonly NodeReport[]): AdmissionCaps {
  const caps = new Map<string, number>();
  const seen = new Set<string>();
  const take = (r: NodeReport, m: string) => {
    if (seen.has(m) || !r.members.includes(m)) return;
    seen.add(m);
    const f = r.adm?.find(([id]) => id === m)?.[1];
    if (f !== undefined) caps.set(m, f);
  };
  const members = liveMembers(reports);
  for (const m of members) for (const r of reports) if (r.id !== m) take(r, m);
  for (const m of members) for (const r of reports) if (r.id === m) take(r, m);
  return caps;
}

export function configOf(reports: readonly NodeReport[]): ClusterConfig {
  return reports[0]!.config;
}

export function membersView(cluster: string, reports: readonly NodeReport[]): MembersView {
  const byId = new Map(reports.map((r) => [r.id, r]));
  const departed = new Set<string>();
  for (const r of reports) for (const d of r.departed) departed.add(d);
  const members = allMembers(reports).map((id): MemberView => {
    const own = byId.get(id);
    let age: number | null = null;
    for (const r of reports)
      for (const [m, a] of r.leases) if (m === id && (age === null || a < age)) age = a;
    return {
      id,
      answered: own !== undefined,
      leaseAgeMs: age,
      fenced: own?.fenced ?? null,
      owned: own ? own.owned.length : null,
      uptimeMs: own ? own.at - own.startedAt : null,
      drainAllowed: own?.drainAllowed ?? null,
    };
  });
  for (const m of members) departed.delete(m.id);
  return { cluster, config: configOf(reports), members, departed: sorted(departed) };
}

export interface PartitionView {
  readonly partition: number;
  /** The one node that owns it now; null when none or several claim it. */
  readonly owner: string | null;
  /** Every node that reports owning it (more than one during churn). */
  readonly claimedBy: readonly string[];
  /** The owner HRW placement gives over the live members. */
  readonly expected: string | null;
  /** "ready" (serving), "pending" (hand-off in), "releasing" (hand-off out) or null (unowned). */
  readonly state: "ready" | "pending" | "releasing" | null;
}

export interface RingView {
  readonly cluster: string;
  readonly ringSize: number;
  readonly hash: string;
  readonly members: readonly string[];
  /** Admission fronts of members joining or leaving step by step (frontsOf); `expected` honours them. */
  readonly fronts: Readonly<Record<string, number>>;
  readonly partitions: readonly PartitionView[];
}

export function ringView(cluster: string, reports: readonly NodeReport[]): RingView {
  const cfg = configOf(reports);
  const members = liveMembers(reports);
  const claims: string[][] = Array.from({ length: cfg.ringSize }, () => []);
  const moving = new Map<string, "pending" | "releasing">();
  for (const r of reports) {
    for (const p of r.owned) if (p < cfg.ringSize) claims[p]!.push(r.id);
    for (const [p, s] of r.entities?.handoffs ?? []) moving.set(`${r.id}/${p}`, s);
  }
  const fronts = frontsOf(reports);
  const ring = cfg.hash === HASH_VERSION ? new Ring(members, cfg.ringSize, fronts) : undefined;
  const partitions = claims.map((claimedBy, partition): PartitionView => {
    const owner = claimedBy.length === 1 ? claimedBy[0]! : null;
    return {
      partition,
      owner,
      claimedBy,
      expected: ring?.ownerOfPartition(partition) ?? null,
      state: owner === null ? null : (moving.get(`${owner}/${partition}`) ?? "ready"),
    };
  });
  return {
    cluster,
    ringSize: cfg.ringSize,
    hash: cfg.hash,
    members,
    fronts: Object.fromEntries(fronts),
    partitions,
  };
}

function placementRing(reports: readonly NodeReport[]): Ring {
  const cfg = configOf(reports);
  if (cfg.hash !== HASH_VERSION) throw new HashVersionError(cfg.hash, HASH_VERSION);
  return new Ring(liveMembers(reports), cfg.ringSize, frontsOf(reports));
}

export interface PlaceView {
  readonly key: string;
  readonly partition: number;
  readonly owner: string | null;
}

export function placeView(reports: readonly NodeReport[], key: string): PlaceView {
  const ring = placementRing(reports);
  return { key, partition: ring.partition(key), owner: ring.place(key) ?? null };
}

export interface OwnersView {
  readonly key: string;
  readonly partition: number;
  readonly owners: readonly string[];
}

export function ownersView(reports: readonly NodeReport[], key: string, n: number): OwnersView {
  const ring = placementRing(reports);
  return { key, partition: ring.partition(key), owners: ring.owners(key, n) };
}

export interface EntityTypeView {
  readonly type: string;
  readonly active: number;
  readonly known: number;
  /** Per node: active and known entities of this type. */
  readonly nodes: Readonly<Record<string, { readonly active: number; readonly known: number }>>;
}

export interface EntitiesView {
  readonly total: { readonly active: number; readonly known: number };
  readonly types: readonly EntityTypeView[];
}

export function entitiesView(reports: readonly NodeReport[]): EntitiesView {
  const types = new Map<
    string,
    { active: number; known: number; nodes: Record<string, { active: number; known: number }> }
  >();
  let active = 0;
  let known = 0;
  for (const r of reports) {
    for (const [type, a, k] of r.entities?.types ?? []) {
      const t = types.get(type) ?? { active: 0, known: 0, nodes: {} };
      t.active += a;
      t.known += k;
      t.nodes[r.id] = { active: a, known: k };
      types.set(type, t);
      active += a;
      known += k;
    }
  }
  return {
    total: { active, known },
    types: sorted(types.keys()).map((type) => ({ type, ...types.get(type)! })),
  };
}

export interface HandoffsView {
  readonly inProgress: readonly {
    readonly node: string;
    readonly partition: number;
    readonly state: "pending" | "releasing";
  }[];
  readonly recent: readonly {
    readonly node: string;
    readonly partition: number;
    readonly from: readonly string[];
    readonly ms: number;
    readonly records: number;
    readonly at: number;
  }[];
}

export function handoffsView(reports: readonly NodeReport[]): HandoffsView {
  const inProgress: HandoffsView["inProgress"][number][] = [];
  const recent: HandoffsView["recent"][number][] = [];
  for (const r of reports) {
    for (const [partition, state] of r.entities?.handoffs ?? [])
      inProgress.push({ node: r.id, partition, state });
    for (const h of r.entities?.recent ?? [])
      recent.push({ node: r.id, partition: h.p, from: h.from, ms: h.ms, records: h.records, at: h.at });
  }
  inProgress.sort((a, b) => a.partition - b.partition || (a.node < b.node ? -1 : 1));
  recent.sort((a, b) => a.at - b.at);
  return { inProgress, recent };
}

export interface NodeStatsView {
  readonly id: string;
  readonly fenced: boolean;
  readonly owned: number;
  readonly asksPerSec: number | null;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly handled: number | null;
  readonly mailbox: number | null;
  readonly active: number | null;
  readonly known: number | null;
  readonly handoffsInProgress: number | null;
  /** Sharding.stats() groups (router, host, handoff, replication, requests) and membership counters. */
  readonly counters: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

export function statsView(reports: readonly NodeReport[]): { readonly nodes: readonly NodeStatsView[] } {
  return {
    nodes: reports.map((r) => {
      const e = r.entities;
      let active: number | null = null;
      let known: number | null = null;
      if (e) {
        active = 0;
        known = 0;
        for (const [, a, k] of e.types) {
          active += a;
          known += k;
        }
      }
      return {
        id: r.id,
        fenced: r.fenced,
        owned: r.owned.length,
        asksPerSec: e?.asksPerSec ?? null,
        p50Ms: e?.p50Ms ?? null,
        p99Ms: e?.p99Ms ?? null,
        handled: e?.handled ?? null,
        mailbox: e?.mailbox ?? null,
        active,
        known,
        handoffsInProgress: e ? e.handoffs.length : null,
        counters: { ...(e?.stats ?? {}), membership: { ...r.membership } },
      };
    }),
  };
}

export interface HealthView {
  readonly healthy: boolean;
  readonly members: number;
  readonly answered: number;
  /** One sentence per problem found; empty when healthy. */
  readonly problems: readonly string[];
}

/** Healthy: every member answered, none is fenced, all agree on members and config, every partition has one owner. */
export function healthView(reports: readonly NodeReport[]): HealthView {
  const problems: string[] = [];
  const members = allMembers(reports);
  const answered = new Set(reports.map((r) => r.id));
  for (const m of members) if (!answered.has(m)) problems.push(`member ${m} did not answer`);
  for (const r of reports) if (r.fenced) problems.push(`node ${r.id} is fenced`);
  const view = (r: NodeReport) => r.members.join(",");
  if (new Set(reports.map(view)).size > 1) problems.push("nodes disagree on the member list");
  const cfg = (r: NodeReport) => JSON.stringify(r.config);
  if (new Set(reports.map(cfg)).size > 1) problems.push("nodes report different cluster settings");
  const ring = ringView("", reports);
  const unowned = ring.partitions.filter((p) => p.claimedBy.length === 0).length;
  const doubled = ring.partitions.filter((p) => p.claimedBy.length > 1).length;
  if (unowned > 0) problems.push(`${unowned} partitions have no owner`);
  if (doubled > 0) problems.push(`${doubled} partitions have more than one owner`);
  return { healthy: problems.length === 0, members: members.length, answered: answered.size, problems };
}

/** What the dashboard page receives on every update. */
export interface DashboardSnapshot {
  readonly at: number;
  readonly cluster: string;
  readonly config: ClusterConfig;
  readonly members: MembersView["members"];
  /** Owner per partition (null when none or contested). */
  readonly owners: readonly (string | null)[];
  readonly states: readonly PartitionView["state"][];
  readonly stats: readonly NodeStatsView[];
  readonly handoffs: HandoffsView;
  /** Admission fronts of members joining or leaving step by step (RingView.fronts). */
  readonly fronts: RingView["fronts"];
  /** Set when the last poll failed (nothing answered); the rest is the last good picture. */
  readonly error?: string;
}

export function dashboardSnapshot(cluster: string, reports: readonly NodeReport[]): DashboardSnapshot {
  const ring = ringView(cluster, reports);
  return {
    at: Date.now(),
    cluster,
    config: configOf(reports),
    members: membersView(cluster, reports).members,
    owners: ring.partitions.map((p) => p.owner),
    states: ring.partitions.map((p) => p.state),
    stats: statsView(reports).nodes,
    handoffs: handoffsView(reports),
    fronts: ring.fronts,
  };
}
