// `keyhold dashboard` in a real headless Chromium (Debian's chromium driven by playwright-core,
// which downloads nothing): the page shows the members and the partition grid, and when a node
// is killed with SIGKILL the grid moves its partitions within ttl + 1 s. Screenshots are kept
// in tmp/ at the repository root (git-ignored).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Sharding } from "@keyhold/actors";
import { AdminClient, type Dashboard, type DashboardSnapshot, startDashboard } from "@keyhold/cli";
import { NatsServer, type ShardingProcess, waitFor } from "@keyhold/testing";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Counter } from "../fixtures/entities.js";
import { connectClient, keyhold, spawnNodes } from "./support.js";

// The page's DOM, as far as the functions evaluated in it use it (the test's tsconfig has no DOM lib).
declare const document: {
  querySelectorAll(
    selector: string,
  ): ArrayLike<{ getAttribute(name: string): string | null }> &
    Iterable<{ getAttribute(name: string): string | null }>;
};

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = fileURLToPath(new URL("../../tmp/", import.meta.url));
const LEASE = { heartbeatMs: 200, ttlMs: 1000, skewMs: 500 } as const;
const CLUSTER = "dash";

let srv: NatsServer;
let nodes: ShardingProcess[];
let client: Sharding;
let admin: AdminClient;
let dashboard: Dashboard;
let context: BrowserContext;
let page: Page;
let profile: string;
let load: Promise<void> | undefined;
let loading = true;

async function launch(): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: install it with \`apt-get install -y chromium\` (.ci/run does)`);
  profile = mkdtempSync(join(tmpdir(), "keyhold-chromium-"));
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1200, height: 1000 },
  });
}

/** What the grid shows now: the owner of each partition cell, "" when none. */
const gridOwners = (p: Page) =>
  p.$$eval("#grid .cell", (cells) => cells.map((c) => c.getAttribute("data-owner") ?? ""));

beforeAll(async () => {
  srv = await NatsServer.start();
  nodes = await spawnNodes(srv.url, CLUSTER, ["node-1", "node-2", "node-3"], LEASE);
  client = await connectClient(srv.url, CLUSTER, LEASE);
  await waitFor(() => client.node.members().length === 3, { message: "client sees 3 members" });
  // A steady trickle of asks, so the charts have something to draw.
  load = (async () => {
    for (let i = 0; loading; i++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, j) => client.ref(Counter, `k-${(i * 10 + j) % 500}`).add(1)),
      ).catch(() => {});
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  admin = await AdminClient.connect(CLUSTER, { servers: [srv.url], reconnect: true });
  dashboard = await startDashboard({ client: admin, intervalMs: 200 });
  context = await launch();
  page = await context.newPage();
  mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  loading = false;
  await load;
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await dashboard?.close();
  await admin?.close();
  await client?.close();
  for (const n of nodes ?? []) await n.kill();
  await srv?.close();
});

describe("keyhold dashboard in Chromium", () => {
  it("shows the members and the ring, and moves a killed node's partitions within ttl + 1 s", async () => {
    await page.goto(dashboard.url);
    await page.waitForFunction(
      () => document.querySelectorAll("#members tr[data-member]").length === 3,
      null,
      {
        timeout: 15_000,
      },
    );
    expect(
      await page.$$eval("#members tr[data-member]", (rows) => rows.map((r) => r.getAttribute("data-member"))),
    ).toEqual(["node-1", "node-2", "node-3"]);
    expect(await page.textContent("#cluster")).toBe(CLUSTER);
    expect(await page.textContent("#meta")).toContain("ring 64");
    // The grid: one cell per partition, each owned as the library's own ring says.
    await page.waitForFunction(() => document.querySelectorAll("#grid .cell[data-owner]").length === 64);
    // The nodes start together and join step by step (joinStepPartitions "auto"): wait until the
    // page and the client's ring agree on the settled ring.
    const ringOwners = () => Array.from({ length: 64 }, (_, p) => client.node.ring.ownerOfPartition(p));
    await waitFor(async () => JSON.stringify(await gridOwners(page)) === JSON.stringify(ringOwners()), {
      timeout: 15_000,
    }).catch(() => {});
    const owners = await gridOwners(page);
    expect(owners).toEqual(ringOwners());
    // Charts per node once a few samples arrived, with asks/s moving under the load.
    await page.waitForFunction(() => document.querySelectorAll("#charts .chart svg path").length === 6);
    await waitFor(
      async () => ((await page.textContent("#charts")) ?? "").match(/[1-9][\d.]* asks\/s/) !== null,
      { timeout: 15_000, message: "a chart shows a non-zero rate" },
    );
    const mailboxes = await page.$$eval("td[data-mailbox]", (c) => c.map((x) => x.textContent ?? ""));
    expect(mailboxes).toHaveLength(3);
    for (const m of mailboxes) expect(m).toMatch(/^\d+$/);
    await page.screenshot({ path: join(SHOTS, "dashboard-3-nodes.png"), fullPage: true });

    const victim = nodes[2]!;
    const lost = owners.map((o, p) => (o === "node-3" ? p : -1)).filter((p) => p >= 0);
    expect(lost.length).toBeGreaterThan(0);
    const killedAt = Date.now();
    await victim.kill();
    await page.waitForFunction(
      () => {
        const cells = [...document.querySelectorAll("#grid .cell")];
        return (
          cells.length === 64 &&
          cells.every((c) => {
            const o = c.getAttribute("data-owner");
            return o === "node-1" || o === "node-2";
          })
        );
      },
      null,
      { timeout: 15_000, polling: 25 },
    );
    const movedMs = Date.now() - killedAt;
    expect(movedMs).toBeLessThanOrEqual(LEASE.ttlMs + 1000);
    // The moved partitions are highlighted, and only they are.
    const highlighted = await page.$$eval("#grid .cell.moved", (cells) =>
      cells.map((c) => Number(c.getAttribute("data-partition"))),
    );
    expect(highlighted.sort((a, b) => a - b)).toEqual(lost);
    const after = await gridOwners(page);
    for (let p = 0; p < 64; p++) if (!lost.includes(p)) expect(after[p]).toBe(owners[p]); // nothing else moved
    await page.waitForFunction(() => document.querySelectorAll("#members tr[data-member]").length === 2);
    await page.screenshot({ path: join(SHOTS, "dashboard-after-kill.png"), fullPage: true });
    console.log(
      `grid moved ${lost.length} partitions of the killed node in ${movedMs} ms; screenshots in ${SHOTS}`,
    );
    const snap = dashboard.snapshot as DashboardSnapshot;
    expect(snap.members.map((m) => m.id)).toEqual(["node-1", "node-2"]);
  });

  it("`keyhold dashboard` prints its URL and serves the page and its events until stopped", async () => {
    const stop = new AbortController();
    let printed = "";
    const running = keyhold(["dashboard", "--port", "0", "--interval", "200", "-s", srv.url, "-c", CLUSTER], {
      signal: stop.signal,
      onStdout: (s) => {
        printed += s;
      },
    });
    await waitFor(() => /http:\/\/127\.0\.0\.1:\d+\//.test(printed), { message: "the URL is printed" });
    const url = printed.match(/http:\/\/127\.0\.0\.1:\d+\//)![0];
    expect(printed).toBe(`keyhold dashboard for cluster ${CLUSTER}: ${url}\n`);
    const html = await (await fetch(url)).text();
    expect(html).toContain("<title>Keyhold dashboard</title>");
    await waitFor(async () => (await fetch(`${url}snapshot.json`)).status === 200);
    const snap = (await (await fetch(`${url}snapshot.json`)).json()) as DashboardSnapshot;
    expect(snap.owners).toHaveLength(64);
    stop.abort();
    expect((await running).code).toBe(0);
  });
});
