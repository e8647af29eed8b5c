// `keyhold dashboard`: a node:http server in the CLI process. It polls the cluster with the
// admin protocol and pushes each picture to the page over server-sent events; the page is
// static HTML and JavaScript (dashboard-page.ts), no build step.
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AdminClient } from "./client.js";
import { DASHBOARD_HTML } from "./dashboard-page.js";
import { type DashboardSnapshot, dashboardSnapshot } from "./view.js";

export interface DashboardOptions {
  readonly client: AdminClient;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** How often the cluster is polled. @default 500 */
  readonly intervalMs?: number;
  /** How long one poll collects answers. @default intervalMs * 2 */
  readonly timeoutMs?: number;
}

export interface Dashboard extends AsyncDisposable {
  readonly url: string;
  /** The last picture sent to the page; undefined before the first poll answered. */
  readonly snapshot: DashboardSnapshot | undefined;
  close(): Promise<void>;
}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const intervalMs = o.intervalMs ?? 500;
  const timeoutMs = o.timeoutMs ?? intervalMs * 2;
  const clients = new Set<ServerResponse>();
  let last: DashboardSnapshot | undefined;
  let lastJson = "";
  let closed = false;

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET" }).end();
    } else if (path === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(DASHBOARD_HTML);
    } else if (path === "/snapshot.json") {
      res.writeHead(last ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(last ? lastJson : JSON.stringify({ error: "no answer yet" }));
    } else if (path === "/events") {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-store",
        connection: "keep-alive",
      });
      res.write("retry: 1000\n\n");
      if (last) res.write(`data: ${lastJson}\n\n`);
      clients.add(res);
      req.on("close", () => clients.delete(res));
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, o.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;

  const push = (snap: DashboardSnapshot) => {
    last = snap;
    lastJson = JSON.stringify(snap);
    for (const c of clients) c.write(`data: ${lastJson}\n\n`);
  };
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    const t0 = Date.now();
    try {
      push(dashboardSnapshot(o.client.cluster, await o.client.gather(timeoutMs)));
    } catch (err) {
      // Keep the last picture on the page, marked stale.
      if (last) push({ ...last, at: Date.now(), error: (err as Error).message });
    }
    if (!closed)
      timer = setTimeout(
        () => {
          inflight = poll();
        },
        Math.max(0, intervalMs - (Date.now() - t0)),
      );
  };
  let inflight = poll();

  const close = async () => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    await inflight;
    for (const c of clients) c.end();
    clients.clear();
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await done;
  };
  return {
    url: `http://${host}:${addr.port}/`,
    get snapshot() {
      return last;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
