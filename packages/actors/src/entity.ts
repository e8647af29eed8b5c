// Entity definitions: the base class users extend, how its handlers are found, and the typed
// reference through which any process sends to an entity by key.
import { ID_PATTERN } from "@keyhold/core";
import { InvalidEntityError, InvalidRequestError, UnknownHandlerError } from "./errors.js";
import { type ReminderSchedule, reminderScope } from "./reminders.js";
import { type HandlerSchema, parseSchemas, type SchemaTable } from "./schema.js";

/** Names on an entity that are lifecycle hooks or fields, never handlers. */
const RESERVED = new Set([
  "constructor",
  "initialState",
  "onActivate",
  "onPassivate",
  "onReminder",
  "remind",
  "cancelReminder",
  "key",
  "state",
  "fencingToken",
]);
/** Where a live instance reads its partition's current epoch (bound on activation, host.ts). */
export const FENCING_TOKEN = Symbol("keyhold.fencingToken");

/** Names a typed reference uses itself; a handler with one of them could never be called through it. */
const REF_MEMBERS = new Set(["ask", "tell", "type", "then"]);

/**
 * Base class of an entity: one live instance per key in the whole cluster. Every public method
 * of a subclass (other than the hooks) is a handler; each handler runs alone, one message at a
 * time, in arrival order.
 */
export abstract class Entity<S = unknown> {
  /** The entity's key. Set before `onActivate` runs. */
  key!: string;
  /** The entity's state: handed to the next owner when its partition moves. Keep it serializable. */
  state!: S;
  /**
   * The fencing token of this owner: the epoch of its tenure of the entity's partition
   * (docs/concepts/safety.md, "Fencing tokens"). It is higher under every later owner, so an
   * external service that remembers the highest token it has seen per key can refuse the call
   * of an owner that has since been replaced. 0 outside a live entity (a unit test's `new`).
   */
  get fencingToken(): number {
    return (this as unknown as { [FENCING_TOKEN]?: () => number })[FENCING_TOKEN]?.() ?? 0;
  }
  /** The state of an entity seen for the first time. */
  abstract initialState(): S;
  /** Runs after the state is loaded and before the first message. */
  onActivate?(): void | Promise<void>;
  /** Runs before the instance is dropped (idle, over the cap, partition moved, node closing). */
  onPassivate?(): void | Promise<void>;
  /**
   * Runs when a reminder set with `remind` falls due; `info.due` is the due time it fires for
   * (at least once per due time: docs/concepts/reminders.md).
   */
  onReminder?(name: string, payload: unknown, info: { readonly due: number }): void | Promise<void>;
  /** Sets or replaces reminder `name`: part of the state, fired through `onReminder` when due. */
  remind(name: string, when: ReminderSchedule, payload?: unknown): void {
    reminderScope(this, "remind").set(name, when, payload);
  }
  /** Cancels reminder `name`; false when there was none. */
  cancelReminder(name: string): boolean {
    return reminderScope(this, "cancelReminder").cancel(name);
  }
}

/** A class that extends Entity, with a static `type` name. */
export interface EntityClass<E extends Entity<unknown> = Entity<unknown>> {
  new (): E;
  readonly type: string;
  /**
   * Copies of each entity's state: the primary plus `replicas - 1` warm standbys on the next
   * owners in HRW order. @default 1 (not replicated)
   */
  readonly replicas?: number;
  /**
   * Argument schemas (Standard Schema: zod, valibot, arktype, ...) by handler name. The owner
   * validates a handler's arguments before it runs and answers InvalidArgumentsError otherwise;
   * the handler receives the schema's output. Each schema's output must fit the handler's
   * parameters. @default none (arguments are only checked to be serializable)
   */
  readonly schemas?: EntitySchemas<E>;
  /**
   * Handlers that only read the state: they skip the version bump, replication and the store,
   * run concurrently with each other (never with a writing handler), and see every write
   * answered before them. Writing `this.state` in one fails with ReadOnlyStateError.
   * `static readonly readOnly = ["balance"] as const`. @default none
   */
  readonly readOnly?: readonly string[];
}

/** The `static schemas` of an entity class: at most one schema per handler, fitting its parameters. */
export type EntitySchemas<E> = {
  readonly [K in HandlerKeys<E>]?: E[K] extends (...args: infer A) => unknown ? HandlerSchema<A> : never;
};

/** Most copies an entity type may ask for. */
export const MAX_REPLICAS = 7;

// biome-ignore lint/suspicious/noExplicitAny: handler signatures are arbitrary
type AnyFn = (...args: any[]) => unknown;
type HandlerKeys<E> = {
  [K in keyof E]: K extends
    | "initialState"
    | "onActivate"
    | "onPassivate"
    | "onReminder"
    | "remind"
    | "cancelReminder"
    | "key"
    | "state"
    | "fencingToken"
    ? never
    : E[K] extends AnyFn
      ? K
      : never;
}[keyof E] &
  string;

/** The handler names of an entity class. */
export type HandlerName<E> = HandlerKeys<E>;

/** Options of one ask. */
export interface AskOptions {
  /** Give up after this many ms. @default the Sharding's `askTimeoutMs` */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

/**
 * A typed reference to one entity: every handler becomes an async method returning the
 * handler's result; `ask` takes options; `tell` sends without waiting (at most once).
 */
export type EntityRef<E> = {
  readonly [K in HandlerKeys<E>]: E[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
} & {
  readonly type: string;
  readonly key: string;
  ask<K extends HandlerKeys<E>>(
    handler: K,
    args: E[K] extends (...args: infer A) => unknown ? A : never,
    options?: AskOptions,
  ): Promise<E[K] extends (...args: never[]) => infer R ? Awaited<R> : never>;
  tell<K extends HandlerKeys<E>>(
    handler: K,
    ...args: E[K] extends (...args: infer A) => unknown ? A : never
  ): void;
};

/** What the runtime knows of a registered entity type. */
export interface EntityDefinition {
  readonly type: string;
  readonly cls: EntityClass;
  readonly handlers: ReadonlySet<string>;
  readonly replicas: number;
  /** Argument schemas by handler; undefined when the class gives none. */
  readonly schemas: SchemaTable | undefined;
  /** The read-only handlers; undefined when the class declares none. */
  readonly readOnly: ReadonlySet<string> | undefined;
}

/** An entity type known only by name (a type-only reference): its owner checks everything. */
export interface TypeName {
  readonly type: string;
  readonly handlers: undefined;
}

/**
 * Builds the reference object: `type`, `key`, `ask`, `tell`, and a method per handler name.
 * Known handlers (from the class) are checked on access; for a type name any name is sent
 * and the owner answers UnknownHandlerError.
 */
export function entityRef<E>(
  def: EntityDefinition | TypeName,
  key: string,
  send: {
    ask: (h: string, args: readonly unknown[], o?: AskOptions) => Promise<unknown>;
    tell: (h: string, args: readonly unknown[]) => void;
  },
): EntityRef<E> {
  const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  const base = {
    type: def.type,
    key,
    ask: (h: string, args: unknown[], o?: AskOptions) => send.ask(h, args, o),
    tell: (h: string, ...args: unknown[]) => send.tell(h, args),
  };
  return new Proxy(base, {
    get: (target, prop) => {
      if (typeof prop !== "string") return undefined;
      if (prop in target) return target[prop as keyof typeof target];
      if (prop === "then") return undefined; // not a thenable
      let m = methods.get(prop);
      if (!m) {
        if (def.handlers && !def.handlers.has(prop)) throw new UnknownHandlerError(def.type, prop);
        m = (...args: unknown[]) => send.ask(prop, args);
        methods.set(prop, m);
      }
      return m;
    },
  }) as unknown as EntityRef<E>;
}

/** Validates an entity class and lists its handlers (public methods up to Entity). */
export function defineEntity(cls: EntityClass): EntityDefinition {
  if (typeof cls !== "function" || !(cls.prototype instanceof Entity)) {
    throw new InvalidEntityError(
      `Expected an entity class extending Entity, got ${String(cls).slice(0, 60)}`,
    );
  }
  const type = cls.type;
  if (typeof type !== "string" || !ID_PATTERN.test(type)) {
    throw new InvalidEntityError(
      `Entity class ${cls.name} needs \`static readonly type\`: 1-64 letters, digits, \`_\` or \`-\`; got ${JSON.stringify(type)}`,
    );
  }
  const handlers = new Set<string>();
  for (let proto = cls.prototype; proto && proto !== Entity.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (RESERVED.has(name) || name.startsWith("_")) continue;
      const d = Object.getOwnPropertyDescriptor(proto, name);
      if (!d || typeof d.value !== "function") continue;
      if (REF_MEMBERS.has(name)) {
        throw new InvalidEntityError(
          `Entity class ${cls.name} (${type}): a handler may not be named ${JSON.stringify(name)}, which entity references use themselves`,
        );
      }
      handlers.add(name);
    }
  }
  const replicas = cls.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS) {
    throw new InvalidEntityError(
      `Entity class ${cls.name} (${type}): \`static replicas\` must be an integer from 1 to ${MAX_REPLICAS}, got ${String(replicas)}`,
    );
  }
  if (handlers.size === 0)
    throw new InvalidEntityError(`Entity class ${cls.name} (${type}) has no handler methods`);
  if (typeof cls.prototype.initialState !== "function") {
    throw new InvalidEntityError(`Entity class ${cls.name} (${type}) must implement initialState()`);
  }
  const schemas = parseSchemas(cls.schemas, handlers, `Entity class ${cls.name} (${type})`);
  const ro = cls.readOnly;
  if (ro !== undefined && (!Array.isArray(ro) || ro.some((h) => typeof h !== "string" || !handlers.has(h)))) {
    throw new InvalidEntityError(
      `Entity class ${cls.name} (${type}): \`static readOnly\` must list handler names of the class, got ${JSON.stringify(ro)?.slice(0, 200)}`,
    );
  }
  const readOnly = ro !== undefined && ro.length > 0 ? new Set<string>(ro) : undefined;
  return { type, cls, handlers, replicas, schemas, readOnly };
}

/** Longest entity key, in UTF-16 units. */
export const MAX_KEY_LENGTH = 1024;

/** Validates an entity key: a non-empty string of at most MAX_KEY_LENGTH UTF-16 units. */
export function isValidEntityKey(key: unknown): key is string {
  return typeof key === "string" && key.length > 0 && key.length <= MAX_KEY_LENGTH;
}

/** Throws InvalidRequestError unless `key` is a valid entity key. */
export function checkEntityKey(key: unknown): asserts key is string {
  if (!isValidEntityKey(key)) {
    throw new InvalidRequestError(
      `Expected an entity key to be a non-empty string of at most ${MAX_KEY_LENGTH} characters, got ${typeof key === "string" ? `a string of ${key.length}` : typeof key}`,
    );
  }
}

/** One string per entity (type and key), for maps keyed by entity across types. */
export function entityId(type: string, key: string): string {
  return `${type}\u0000${key}`;
}
