// Shared setup for the secured-deployment tests: the NATS configuration is read from the how-to
// page itself, so the page and what the tests run cannot drift apart.
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Entity, Sharding, type ShardingOptions } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { errors, type NatsConnection } from "@nats-io/transport-node";
import { Counter } from "../fixtures/entities.js";

export const DOC = fileURLToPath(new URL("../../docs/how-to/secure-a-cluster.md", import.meta.url));
export const LEASE = { heartbeatMs: 100, ttlMs: 400, skewMs: 200 } as const;

/**
 * The JSON block that follows `<!-- config: NAME -->` in the how-to page, parsed. nats-server
 * reads JSON configuration files as they are, so the page's block is a working file.
 */
export async function docConfig(name: string): Promise<Record<string, unknown>> {
  const text = await readFile(DOC, "utf8");
  const marker = `<!-- config: ${name} -->`;
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`${DOC} has no ${marker}`);
  const block = /```json\n([\s\S]*?)\n```/.exec(text.slice(at + marker.length));
  if (!block?.[1]) throw new Error(`${DOC}: no json block after ${marker}`);
  return JSON.parse(block[1]) as Record<string, unknown>;
}

/** The same configuration for another cluster: names, accounts and passwords renamed. */
export function forCluster(
  config: Record<string, unknown>,
  from: string,
  to: string,
): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(config).replaceAll(from, to).replaceAll(from.toUpperCase(), to.toUpperCase()),
  ) as Record<string, unknown>;
}

/** User name and password of a user in the accounts of a config, looked up by name. */
export function credentials(config: Record<string, unknown>, user: string): { user: string; pass: string } {
  const accounts = config.accounts as Record<string, { users: { user: string; password: string }[] }>;
  for (const account of Object.values(accounts)) {
    const found = account.users.find((u) => u.user === user);
    if (found) return { user: found.user, pass: found.password };
  }
  throw new Error(`no user ${user} in the configuration`);
}

/** A counter kept on two nodes, so that replication traffic crosses the node user's permissions. */
export class Replicated extends Entity<{ n: number }> {
  static readonly type = "replicated";
  static readonly replicas = 2;
  initialState() {
    return { n: 0 };
  }
  add(by: number) {
    this.state.n += by;
    return this.state.n;
  }
  get() {
    return this.state.n;
  }
}

export function startNode(url: string, cluster: string, extra: Partial<ShardingOptions> = {}) {
  return Sharding.start({
    servers: url,
    cluster,
    ...LEASE,
    entities: [Counter, Replicated],
    logger: silentLogger,
    handoffTimeoutMs: 5000,
    ...extra,
  });
}

export function connectClient(url: string, cluster: string, extra: Partial<ShardingOptions> = {}) {
  return Sharding.connect({
    servers: url,
    cluster,
    ...LEASE,
    entities: [Counter, Replicated],
    logger: silentLogger,
    ...extra,
  });
}

const run = promisify(execFile);

export interface Certificates {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/** A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all signed by the CA. */
export async function makeCertificates(dir: string): Promise<Certificates> {
  const openssl = (...args: string[]) => run("openssl", args, { cwd: dir });
  const f = (name: string) => join(dir, name);
  await openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=Keyhold test CA",
    "-keyout",
    f("ca-key.pem"),
    "-out",
    f("ca.pem"),
  );
  await writeFile(
    f("server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  await writeFile(f("client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, cn] of [
    ["server", "localhost"],
    ["client", "orders-node"],
  ] as const) {
    await openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      f(`${name}-key.pem`),
      "-out",
      f(`${name}.csr`),
    );
    await openssl(
      "x509",
      "-req",
      "-in",
      f(`${name}.csr`),
      "-CA",
      f("ca.pem"),
      "-CAkey",
      f("ca-key.pem"),
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      f(`${name}.ext`),
      "-out",
      f(`${name}.pem`),
    );
  }
  return {
    ca: f("ca.pem"),
    serverCert: f("server.pem"),
    serverKey: f("server-key.pem"),
    clientCert: f("client.pem"),
    clientKey: f("client-key.pem"),
  };
}

/** The reply-subject prefix the client user is limited to (`natsOptions.inboxPrefix`). */
export const CLIENT_INBOX = "_INBOX_orders_client";

/** Collects the connection's permission violations as "publish SUBJECT" / "subscription SUBJECT". */
export function violations(nc: NatsConnection): string[] {
  const out: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error" && s.error instanceof errors.PermissionViolationError) {
        out.push(`${s.error.operation} ${s.error.subject}`);
      }
    }
  })();
  return out;
}

/** Adds a test-only user with no permission limits to an account, to watch its subjects. */
export function withWatcher(config: Record<string, unknown>, account: string): Record<string, unknown> {
  const copy = structuredClone(config) as { accounts: Record<string, { users: unknown[] }> };
  const target = copy.accounts[account];
  if (!target) throw new Error(`no account ${account} in the configuration`);
  target.users.push({ user: "watcher", password: "watcher" });
  return copy;
}
