// Every `keyhold` command against a real cluster: three node processes on a real nats-server,
// a client in this process creating entities, and the CLI run in-process with --json.

import type { Sharding } from "@keyhold/actors";
import type {
  EntitiesView,
  HandoffsView,
  HealthView,
  MembersView,
  NodeStatsView,
  OwnersView,
  PlaceView,
  RingView,
} from "@keyhold/cli";
import { NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Counter } from "../fixtures/entities.js";
import { connectClient, keyhold, keyholdJson, LEASE, spawnNodes } from "./support.js";

const CLUSTER = "cli";
const ESC = "\x1b";
const CLEAR = `${ESC}[H${ESC}[2J`;
const RING = 32; // not the default: the CLI must learn it from the cluster
let srv: NatsServer;
let nodes: ShardingProcess[];
let client: Sharding;
let base: string[];

beforeAll(async () => {
  srv = await NatsServer.start();
  nodes = await spawnNodes(srv.url, CLUSTER, ["node-a", "node-b", "node-c"], { ringSize: RING });
  client = await connectClient(srv.url, CLUSTER, { ringSize: RING });
  // Nodes join step by step by default: wait for the last step (no member capped) as well.
  await waitFor(() => client.node.members().length === 3 && client.node.ring.caps.size === 0, {
    message: "client sees 3 members, all uncapped",
  });
  await Promise.all(Array.from({ length: 300 }, (_, i) => client.ref(Counter, `user-${i}`).add(1)));
  base = ["--server", srv.url, "--cluster", CLUSTER];
});

afterAll(async () => {
  await client?.close();
  for (const n of nodes ?? []) await n.kill();
  await srv?.close();
});

describe("keyhold against a running cluster", () => {
  it("members: every node (and not the client) with lease ages and the cluster's settings", async () => {
    const v = await keyholdJson<MembersView>(["members", ...base]);
    expect(v.cluster).toBe(CLUSTER);
    expect(v.config).toEqual({ ringSize: RING, ...LEASE, hash: "murmur3-32-hrw/1+caps/1" });
    expect(v.members.map((m) => m.id)).toEqual(["node-a", "node-b", "node-c"]);
    for (const m of v.members) {
      expect(m.answered).toBe(true);
      expect(m.fenced).toBe(false);
      expect(m.leaseAgeMs).not.toBeNull();
      expect(m.leaseAgeMs!).toBeLessThanOrEqual(LEASE.ttlMs);
      expect(m.drainAllowed).toBe(false);
    }
    expect(v.members.reduce((a, m) => a + (m.owned ?? 0), 0)).toBe(RING);
    const text = await keyhold(["members", ...base]);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^cluster cli: 3 members, ring 32/);
    expect(text.out).toMatch(/^node-b\s+\d+(\.\d+)?ms\s+no\s+\d+/m);
  });

  it("ring: each partition has the one owner the client's own ring computes", async () => {
    const v = await keyholdJson<RingView>(["ring", ...base]);
    expect(v.ringSize).toBe(RING);
    expect(v.partitions).toHaveLength(RING);
    for (const p of v.partitions) {
      expect(p.claimedBy).toHaveLength(1);
      expect(p.owner).toBe(client.node.ring.ownerOfPartition(p.partition));
      expect(p.expected).toBe(p.owner);
      expect(p.state).toBe("ready");
    }
    expect(new Set(v.partitions.map((p) => p.owner))).toEqual(new Set(["node-a", "node-b", "node-c"]));
  });

  it("place and owners agree with the library's placement", async () => {
    for (const key of ["user-1", "user-42", "ünïcode key"]) {
      const place = await keyholdJson<PlaceView>(["place", key, ...base]);
      expect(place).toEqual({ key, partition: client.node.partition(key), owner: client.node.place(key) });
      const owners = await keyholdJson<OwnersView>(["owners", key, "3", ...base]);
      expect(owners.owners).toEqual(client.node.owners(key, 3));
      expect(owners.owners[0]).toBe(place.owner);
    }
    const text = await keyhold(["owners", "user-1", "2", ...base]);
    expect(text.out.trim()).toBe(
      `user-1: partition ${client.node.partition("user-1")}, owners ${client.node.owners("user-1", 2).join(", ")}`,
    );
  });

  it("entities: active and known per type and per node add up to the keys used", async () => {
    const v = await keyholdJson<EntitiesView>(["entities", ...base]);
    expect(v.total).toEqual({ active: 300, known: 300 });
    expect(v.types.map((t) => t.type)).toEqual(["counter"]);
    const perNode = Object.values(v.types[0]!.nodes).reduce((a, c) => a + c.known, 0);
    expect(perNode).toBe(300);
    const states = await Promise.all(nodes.map((n) => n.state()));
    for (const s of states) expect(v.types[0]!.nodes[s.id]?.known).toBe(s.stats.host.known);
  });

  it("stats: asks/s, latency quantiles, mailbox and counters per node", async () => {
    const v = await keyholdJson<{ nodes: NodeStatsView[] }>(["stats", ...base]);
    expect(v.nodes.map((n) => n.id)).toEqual(["node-a", "node-b", "node-c"]);
    const handled = v.nodes.reduce((a, n) => a + (n.handled ?? 0), 0);
    expect(handled).toBe(300);
    for (const n of v.nodes) {
      expect(n.mailbox).toBe(0);
      expect(n.fenced).toBe(false);
      expect(n.counters.host?.known).toBe(n.known);
      expect(n.counters.membership?.heartbeatsSent).toBeGreaterThan(0);
      if ((n.handled ?? 0) > 0) {
        expect(n.p50Ms).not.toBeNull();
        expect(n.p99Ms!).toBeGreaterThanOrEqual(n.p50Ms!);
      }
    }
    // A steady load shows up as a rate.
    const stop = Date.now() + 1500;
    while (Date.now() < stop)
      await Promise.all(Array.from({ length: 20 }, (_, i) => client.ref(Counter, `user-${i}`).add(1)));
    const after = await keyholdJson<{ nodes: NodeStatsView[] }>(["stats", ...base]);
    expect(after.nodes.reduce((a, n) => a + (n.asksPerSec ?? 0), 0)).toBeGreaterThan(0);
    const text = await keyhold(["stats", ...base]);
    expect(text.out.split("\n")[0]).toMatch(/^NODE\s+ASKS\/S\s+P50\s+P99\s+MAILBOX/);
  });

  it("health: exit 0 on a healthy cluster", async () => {
    const r = await keyhold(["health", ...base]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^healthy: 3 of 3 members answered/);
    const v = await keyholdJson<HealthView>(["health", ...base]);
    expect(v).toEqual({ healthy: true, members: 3, answered: 3, problems: [] });
  });

  it("watch: redraws frames until --count, and one JSON line per frame", async () => {
    const r = await keyhold(["watch", "--interval", "100", "--count", "3", ...base], {
      tty: true,
      env: { NO_COLOR: "1" },
    });
    expect(r.code).toBe(0);
    expect(r.out.split(CLEAR)).toHaveLength(4); // three redraws
    expect(r.out.replaceAll(CLEAR, "")).not.toContain(ESC); // NO_COLOR: no colour escapes
    const j = await keyhold(["watch", "--interval", "100", "--count", "2", "--json", ...base]);
    const lines = j.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[1].members.members).toHaveLength(3);
    expect(lines[1].stats.nodes).toHaveLength(3);
  });

  it("colour on a terminal unless NO_COLOR is set; none when piped", async () => {
    const tty = await keyhold(["members", ...base], { tty: true });
    expect(tty.out).toContain(`${ESC}[1m`);
    const noColor = await keyhold(["members", ...base], { tty: true, env: { NO_COLOR: "1" } });
    expect(noColor.out).not.toContain(ESC);
    const piped = await keyhold(["members", ...base]);
    expect(piped.out).not.toContain(ESC);
  });

  it("handoffs: a joining node pulls partitions and reports them", async () => {
    const [d] = await spawnNodes(srv.url, CLUSTER, ["node-d"], {
      ringSize: RING,
      admin: { allowDrain: true },
    });
    nodes.push(d!);
    await waitFor(() => client.node.members().length === 4, { message: "client sees node-d" });
    await waitFor(
      async () => {
        const v = await keyholdJson<HandoffsView>(["handoffs", ...base]);
        return v.inProgress.length === 0 && v.recent.some((h) => h.node === "node-d" && h.from.length > 0);
      },
      { timeout: 20_000, message: "node-d reports completed hand-offs" },
    );
    const v = await keyholdJson<HandoffsView>(["handoffs", ...base]);
    const mine = v.recent.filter((h) => h.node === "node-d");
    expect(new Set(mine.map((h) => h.partition))).toEqual(new Set((await d!.state()).owned));
    for (const h of mine) {
      expect(h.ms).toBeGreaterThanOrEqual(0);
      expect(h.records).toBeGreaterThanOrEqual(0);
    }
    const text = await keyhold(["handoffs", ...base]);
    expect(text.out).toMatch(/^In progress\nno hand-offs in progress/);
  });

  it("drain: refused by a node started without admin.allowDrain, done by one started with it", async () => {
    const refused = await keyhold(["drain", "node-a", ...base]);
    expect(refused.code).toBe(1);
    expect(refused.err.trim()).toBe(
      "keyhold: drain of node-a refused: node node-a was not started with admin.allowDrain: true (KH_DRAIN_NOT_ALLOWED)",
    );
    const members = await keyholdJson<MembersView>(["members", ...base]);
    expect(members.members.find((m) => m.id === "node-d")?.drainAllowed).toBe(true);
    const r = await keyholdJson<{ node: string; draining: boolean; left: boolean; ms: number }>([
      "drain",
      "node-d",
      ...base,
    ]);
    expect(r).toMatchObject({ node: "node-d", draining: true, left: true });
    await waitFor(() => client.node.members().length === 3, { message: "node-d left" });
    expect(client.node.departed()).toContain("node-d"); // a graceful leave, not a lease expiry
    const after = await keyholdJson<MembersView>(["members", ...base]);
    expect(after.members.map((m) => m.id)).toEqual(["node-a", "node-b", "node-c"]);
    expect(after.departed).toContain("node-d");
    // Nothing was lost on the way out.
    expect(await client.ref(Counter, "user-250").get()).toBe(1);
  });

  it("health: exit 1 while a killed node's lease has not expired yet", async () => {
    await nodes[2]!.kill();
    const r = await keyhold(["health", ...base]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^unhealthy: .*member node-c did not answer/);
    await waitFor(async () => (await keyhold(["health", ...base])).code === 0, {
      timeout: 10_000,
      message: "healthy again once node-c's lease expired",
    });
  });
});

describe("keyhold input and failure handling", () => {
  it("a clear one-line error and exit 1 for wrong input", async () => {
    const cases: [string[], RegExp][] = [
      [["members"], /^keyhold: no cluster given: pass --cluster NAME or set KEYHOLD_CLUSTER$/],
      [["frobnicate", "-c", "x"], /^keyhold: unknown command "frobnicate" \(see keyhold --help\)$/],
      [["place", "-c", "x"], /^keyhold: place takes KEY, got none/],
      [
        ["owners", "k", "many", "-c", "x", "-s", srv.url],
        /^keyhold: --N must be an integer from 1 to 1000, got "many"$/,
      ],
      [["members", "--bogus", "-c", "x"], /^keyhold: Unknown option '--bogus'/],
      [["members", "--port", "1", "-c", "x"], /^keyhold: option --port does not apply to members/],
      [["members", "-c", "bad.name"], /^keyhold: --cluster must be 1-64 letters/],
      [["members", "-c", "x", "--timeout", "-5"], /^keyhold: /],
      [["members", "-c", "x", "--user", "u"], /^keyhold: --user and --password go together$/],
      [[], /^keyhold: no command given/],
    ];
    for (const [args, want] of cases) {
      const r = await keyhold(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.err.split("\n").filter(Boolean), args.join(" ")).toHaveLength(1);
      expect(r.err.trim(), args.join(" ")).toMatch(want);
    }
  });

  it("exit 1 when nothing answers: an empty cluster, or no server", async () => {
    const empty = await keyhold(["members", "-s", srv.url, "-c", "nobody-here", "--timeout", "300"]);
    expect(empty.code).toBe(1);
    expect(empty.err.trim()).toBe(
      'keyhold: no node of cluster "nobody-here" answered a status request within 300 ms',
    );
    const health = await keyhold(["health", "-s", srv.url, "-c", "nobody-here", "--timeout", "300"]);
    expect(health.code).toBe(1);
    const down = await keyhold(["members", "-s", "nats://127.0.0.1:1", "-c", "x"]);
    expect(down.code).toBe(1);
    expect(down.err.trim()).toMatch(/^keyhold: cannot connect to nats:\/\/127\.0\.0\.1:1: /);
    const drainNobody = await keyhold(["drain", "ghost", "-s", srv.url, "-c", CLUSTER, "--timeout", "300"]);
    expect(drainNobody.code).toBe(1);
    expect(drainNobody.err.trim()).toMatch(
      /^keyhold: no node of cluster "cli" answered a drain request for node "ghost"/,
    );
  });

  it("NATS_URL and KEYHOLD_CLUSTER stand in for --server and --cluster", async () => {
    const r = await keyhold(["members", "--json"], { env: { NATS_URL: srv.url, KEYHOLD_CLUSTER: CLUSTER } });
    expect(r.code).toBe(0);
    // node-c was killed and node-d drained above.
    expect((JSON.parse(r.out) as MembersView).members.map((m) => m.id)).toEqual(["node-a", "node-b"]);
  });

  it("--help lists every command; COMMAND --help shows its usage", async () => {
    const r = await keyhold(["--help"]);
    expect(r.code).toBe(0);
    for (const c of [
      "members",
      "ring",
      "place KEY",
      "owners KEY N",
      "entities",
      "handoffs",
      "stats",
      "health",
      "watch",
      "drain NODE",
      "dashboard",
    ])
      expect(r.out).toMatch(new RegExp(`^  ${c}\\s`, "m"));
    const one = await keyhold(["owners", "--help"]);
    expect(one.code).toBe(0);
    expect(one.out).toMatch(/^Usage: keyhold owners KEY N \[options\]/);
    expect(one.out).toMatch(/--server URL/);
    expect((await keyhold(["help", "drain"])).out).toMatch(/^Usage: keyhold drain NODE/);
  });
});
