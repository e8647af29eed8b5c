// The admin client: one NATS connection, scatter-gather status requests (every member replies;
// collect until all known members answered or the deadline), and drain. Malformed replies are
// counted and dropped like any other bad input.
import { readFileSync } from "node:fs";
import {
  type AdminReply,
  adminSubjects,
  decodeAdminReply,
  encodeAdmin,
  isAdminMalformed,
  type NodeReport,
} from "@keyhold/core";
import {
  type ConnectionOptions,
  createInbox,
  credsAuthenticator,
  type NatsConnection,
} from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { ConnectError, DrainRefusedError, NoAnswerError } from "./errors.js";

/** How to reach NATS: mirrors the nats.js connection options the CLI passes through. */
export interface ConnectOptions {
  readonly servers: readonly string[];
  readonly creds?: string | undefined;
  readonly user?: string | undefined;
  readonly password?: string | undefined;
  readonly token?: string | undefined;
  readonly tlsCa?: string | undefined;
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  /** Replies arrive on `<inboxPrefix>.…` (a NATS user may subscribe to that alone). @default "_INBOX" */
  readonly inboxPrefix?: string | undefined;
  /** Keep reconnecting (watch, dashboard) instead of failing at the first loss. @default false */
  readonly reconnect?: boolean;
}

export function natsOptions(o: ConnectOptions): ConnectionOptions {
  const opts: ConnectionOptions = {
    servers: [...o.servers],
    name: "keyhold-cli",
    timeout: 5000,
    maxReconnectAttempts: o.reconnect ? -1 : 0,
    reconnectTimeWait: 250,
  };
  if (o.creds !== undefined) opts.authenticator = credsAuthenticator(readFileSync(o.creds));
  if (o.user !== undefined) opts.user = o.user;
  if (o.password !== undefined) opts.pass = o.password;
  if (o.token !== undefined) opts.token = o.token;
  if (o.inboxPrefix !== undefined) opts.inboxPrefix = o.inboxPrefix;
  if (o.tlsCa !== undefined || o.tlsCert !== undefined || o.tlsKey !== undefined) {
    opts.tls = {
      ...(o.tlsCa !== undefined ? { caFile: o.tlsCa } : {}),
      ...(o.tlsCert !== undefined ? { certFile: o.tlsCert } : {}),
      ...(o.tlsKey !== undefined ? { keyFile: o.tlsKey } : {}),
    };
  }
  return opts;
}

export class AdminClient implements AsyncDisposable {
  readonly cluster: string;
  readonly connection: NatsConnection;
  /** Replies dropped because they failed validation. */
  malformed = 0;

  readonly #inboxPrefix: string | undefined;

  private constructor(cluster: string, nc: NatsConnection, inboxPrefix: string | undefined) {
    this.cluster = cluster;
    this.connection = nc;
    this.#inboxPrefix = inboxPrefix;
  }

  static async connect(cluster: string, o: ConnectOptions): Promise<AdminClient> {
    let opts: ConnectionOptions;
    try {
      opts = natsOptions(o);
    } catch (err) {
      throw new ConnectError(o.servers, { cause: err });
    }
    try {
      return new AdminClient(cluster, await connect(opts), o.inboxPrefix);
    } catch (err) {
      throw new ConnectError(o.servers, { cause: err });
    }
  }

  /**
   * One status request to every member; resolves with the reports, sorted by node id, once
   * every member named in any report answered, or at `timeoutMs`. Throws NoAnswerError when
   * nobody answered.
   */
  async gather(timeoutMs: number): Promise<NodeReport[]> {
    const byId = new Map<string, NodeReport>();
    const inbox = createInbox(this.#inboxPrefix);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      const sub = this.connection.subscribe(inbox, {
        callback: (err, msg) => {
          if (err) return finish();
          const reply = decodeAdminReply(msg.data);
          if (isAdminMalformed(reply) || reply.k !== "report") {
            this.malformed++;
            return;
          }
          byId.set(reply.r.id, reply.r);
          const known = new Set<string>();
          for (const r of byId.values()) for (const m of r.members) known.add(m);
          if ([...known].every((m) => byId.has(m))) finish();
        },
      });
      function finish() {
        clearTimeout(timer);
        sub.unsubscribe();
        resolve();
      }
      this.connection.publish(adminSubjects(this.cluster).all, encodeAdmin({ v: 1, k: "status" }), {
        reply: inbox,
      });
    });
    if (byId.size === 0) throw new NoAnswerError(this.cluster, `a status request within ${timeoutMs} ms`);
    return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Asks `node` to leave gracefully; resolves once it acknowledged. */
  async drain(node: string, timeoutMs: number): Promise<void> {
    let reply: AdminReply | { error: string };
    try {
      const m = await this.connection.request(
        adminSubjects(this.cluster).node(node),
        encodeAdmin({ v: 1, k: "drain", node }),
        { timeout: timeoutMs },
      );
      reply = decodeAdminReply(m.data);
    } catch {
      throw new NoAnswerError(this.cluster, `a drain request for node "${node}" (is it a member?)`);
    }
    if (isAdminMalformed(reply)) {
      this.malformed++;
      throw new NoAnswerError(this.cluster, `a drain request for node "${node}" with a valid reply`);
    }
    if (reply.k === "refused") throw new DrainRefusedError(node, reply.code, reply.message);
    if (reply.k !== "draining")
      throw new NoAnswerError(this.cluster, `a drain request for node "${node}" as expected`);
  }

  async close(): Promise<void> {
    if (!this.connection.isClosed()) await this.connection.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
