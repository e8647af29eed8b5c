// The admin responder of one member node: answers status requests with its report and drain
// requests (when allowed) with a graceful leave; its options. The messages: admin-wire.ts.
import {
  type AdminReply,
  adminSubjects,
  DRAIN_NOT_ALLOWED,
  decodeAdminRequest,
  type EntitiesReport,
  encodeAdmin,
  isAdminMalformed,
  type NodeReport,
} from "./admin-wire.js";
import type { Clock } from "./clock.js";
import { InvalidOptionError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { ShardNode } from "./shard-node.js";
import type { Transport, TransportSubscription } from "./transport.js";
import { isObj } from "./validate.js";

/** Admin options of a node (`ShardNodeOptions.admin`, also taken by Sharding.start). */
export interface AdminOptions {
  /** Answer admin requests at all. @default true */
  readonly enabled?: boolean;
  /** Let `keyhold drain NODE` make this node leave gracefully. @default false */
  readonly allowDrain?: boolean;
}

export interface ParsedAdminOptions {
  readonly enabled: boolean;
  readonly allowDrain: boolean;
}

export function parseAdminOptions(o: unknown): ParsedAdminOptions {
  if (o === undefined) return { enabled: true, allowDrain: false };
  if (!isObj(o)) throw new InvalidOptionError("admin", "an object { enabled?, allowDrain? }", o);
  const { enabled, allowDrain } = o;
  if (enabled !== undefined && typeof enabled !== "boolean")
    throw new InvalidOptionError("admin.enabled", "a boolean", enabled);
  if (allowDrain !== undefined && typeof allowDrain !== "boolean")
    throw new InvalidOptionError("admin.allowDrain", "a boolean", allowDrain);
  return { enabled: enabled ?? true, allowDrain: allowDrain ?? false };
}

/** What a layer above a ShardNode (Sharding) adds: its report section and its own drain. */
export interface AdminExtension {
  report(): EntitiesReport;
  /** A graceful leave of the whole node (Sharding.close()). */
  drain(): Promise<void>;
  close?(): void;
}

/** Counters of the admin responder. */
export interface AdminStats {
  requests: number;
  malformed: number;
  drainsRefused: number;
}

/**
 * Answers admin requests for one member node. Started by ShardNode.start for members (not
 * observers) unless `admin.enabled` is false.
 */
export class AdminResponder {
  readonly stats: AdminStats = { requests: 0, malformed: 0, drainsRefused: 0 };
  readonly #node: ShardNode;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #options: ParsedAdminOptions;
  readonly #startedAt: number;
  readonly #subs: TransportSubscription[] = [];
  // When a member's newest accepted heartbeat was emitted (the node's lease table).
  readonly #emittedAt: (id: string) => number | undefined;
  #extension: AdminExtension | undefined;
  #draining = false;

  constructor(args: {
    node: ShardNode;
    transport: Transport;
    clock: Clock;
    logger: Logger;
    options: ParsedAdminOptions;
    emittedAt: (id: string) => number | undefined;
  }) {
    this.#emittedAt = args.emittedAt;
    this.#node = args.node;
    this.#transport = args.transport;
    this.#clock = args.clock;
    this.#logger = args.logger;
    this.#options = args.options;
    this.#startedAt = args.clock.now();
    const s = adminSubjects(args.node.cluster);
    const t = args.transport;
    this.#subs.push(t.subscribe(s.all, (m) => this.#onRequest(m.data, m.reply, false)));
    this.#subs.push(t.subscribe(s.node(args.node.id), (m) => this.#onRequest(m.data, m.reply, true)));
  }

  /** Adds the entity layer's report section and drain. */
  extend(extension: AdminExtension): void {
    this.#extension = extension;
  }

  /** This node's report, as sent to a status request. */
  report(): NodeReport {
    const node = this.#node;
    const now = this.#clock.now();
    const members = node.members();
    const leases: [string, number][] = [];
    for (const m of members) {
      const at = this.#emittedAt(m);
      if (at !== undefined) leases.push([m, Math.max(0, now - at)]);
    }
    const base: NodeReport = {
      id: node.id,
      at: now,
      startedAt: this.#startedAt,
      fenced: node.fenced,
      config: node.config,
      members,
      leases,
      departed: node.departed(),
      owned: node.ownedPartitions(),
      drainAllowed: this.#options.allowDrain,
      membership: node.stats(),
    };
    const caps = node.ring.caps;
    const withAdm = caps.size > 0 ? { ...base, adm: [...caps] } : base;
    return this.#extension ? { ...withAdm, entities: this.#extension.report() } : withAdm;
  }

  #onRequest(data: Uint8Array, reply: string | undefined, direct: boolean): void {
    const msg = decodeAdminRequest(data);
    if (isAdminMalformed(msg) || !reply || (msg.k === "drain" && (!direct || msg.node !== this.#node.id))) {
      this.stats.malformed++;
      this.#logger.debug(
        `node ${this.#node.id}: dropped a malformed admin request: ${"error" in msg ? msg.error : "misaddressed"}`,
      );
      return;
    }
    this.stats.requests++;
    if (msg.k === "status") return this.#send(reply, { v: 1, k: "report", r: this.report() });
    if (!this.#options.allowDrain) {
      this.stats.drainsRefused++;
      return this.#send(reply, {
        v: 1,
        k: "refused",
        code: DRAIN_NOT_ALLOWED,
        message: `node ${this.#node.id} was not started with admin.allowDrain: true`,
      });
    }
    this.#send(reply, { v: 1, k: "draining", node: this.#node.id });
    if (this.#draining) return;
    this.#draining = true;
    this.#logger.info(`node ${this.#node.id}: draining on an admin request`);
    // Let the acknowledgement reach the server before the connection goes.
    void this.#transport
      .flush()
      .catch(() => {})
      .then(() => (this.#extension ? this.#extension.drain() : this.#node.close()))
      .catch((err: unknown) => this.#logger.error(`node ${this.#node.id}: drain failed: ${String(err)}`));
  }

  #send(reply: string, msg: AdminReply): void {
    try {
      this.#transport.publish(reply, encodeAdmin(msg));
    } catch (err) {
      this.#logger.warn(`node ${this.#node.id}: admin reply not sent: ${String(err)}`);
    }
  }

  /** Stops answering. Idempotent. */
  close(): void {
    for (const s of this.#subs.splice(0)) s.unsubscribe();
    this.#extension?.close?.();
  }
}

/** The responder of a freshly started node: undefined for observers or with `admin.enabled: false`. */
export function startAdmin(
  node: ShardNode,
  transport: Transport,
  opts: { observer: boolean; admin: ParsedAdminOptions; clock: Clock; logger: Logger },
  emittedAt: (id: string) => number | undefined,
): AdminResponder | undefined {
  if (opts.observer || !opts.admin.enabled) return undefined;
  return new AdminResponder({
    node,
    transport,
    clock: opts.clock,
    logger: opts.logger,
    options: opts.admin,
    emittedAt,
  });
}
