// The view of an entity's state a read-only handler sees: the same objects behind a proxy that
// refuses every write (set, delete, defineProperty, Map/Set mutators) with ReadOnlyStateError
// before it happens. Proxies are made lazily, one per object reached, and kept (weakly) for the
// next read: a read that touches k objects costs k trap calls, and no allocation once warm. Typed arrays and class instances with internal slots other than Map, Set and
// Date are returned as they are (not guarded): docs/concepts/performance.md says so.
import { ReadOnlyStateError } from "./errors.js";

const MAP_MUTATORS = new Set(["set", "delete", "clear"]);
const SET_MUTATORS = new Set(["add", "delete", "clear"]);
const DATE_MUTATOR = /^set/;

/** Read-only proxies of one entity type's handler, cached per underlying object. */
export class ReadOnlyViews {
  readonly #type: string;
  /** The read-only handler that began the current reading phase, named in the error. */
  handler = "a read-only handler";
  readonly #cache = new WeakMap<object, object>();

  constructor(type: string) {
    this.#type = type;
  }

  #refuse(): never {
    throw new ReadOnlyStateError(this.#type, this.handler);
  }

  /** `value` as a read-only handler may see it. */
  view<T>(value: T): T {
    if (value === null || typeof value !== "object") return value;
    if (ArrayBuffer.isView(value)) return value;
    const hit = this.#cache.get(value);
    if (hit) return hit as T;
    const views = this;
    const target = value as object;
    const isMap = target instanceof Map;
    const isSet = target instanceof Set;
    const isDate = target instanceof Date;
    const proxy = new Proxy(target, {
      get(t, prop) {
        if (isMap || isSet || isDate) {
          const v = Reflect.get(t, prop, t) as unknown;
          if (typeof v !== "function") return v;
          const name = String(prop);
          if ((isMap && MAP_MUTATORS.has(name)) || (isSet && SET_MUTATORS.has(name)))
            return () => views.#refuse();
          if (isDate && DATE_MUTATOR.test(name)) return () => views.#refuse();
          const bound = (v as (...a: unknown[]) => unknown).bind(t);
          // Values read out of a Map (get, values, entries, forEach) are guarded too.
          if (isMap && name === "get") return (k: unknown) => views.view(bound(k));
          return bound;
        }
        return views.view(Reflect.get(t, prop, t));
      },
      set: () => views.#refuse(),
      deleteProperty: () => views.#refuse(),
      defineProperty: () => views.#refuse(),
      setPrototypeOf: () => views.#refuse(),
      preventExtensions: () => views.#refuse(),
    });
    this.#cache.set(target, proxy);
    return proxy as T;
  }
}

/**
 * The reading phase of one entity: how many of its read-only handlers run now, its real state
 * and the view they see. Made on the entity's first read and kept on its slot (slots.ts
 * `reads`), so a read allocates nothing and looks nothing up: the guarded view of the state
 * object the last phase began with is kept beside it. (It was a WeakMap entry per instance, set
 * and deleted on every read, and a WeakMap of views per state object: the churn made a local
 * read-only ask cost 2.4-3.8 µs against 1.0 µs for a write, growing as the maps aged.)
 */
export class Reads {
  /** Read-only handlers running now on the entity. */
  count = 0;
  /** While `count > 0`: the real state, put back when the last of them ends. */
  state: unknown = undefined;
  /** While `count > 0`: what `this.state` holds (the guarded view of `state`). */
  view: unknown = undefined;
  /** The views of every object reached from the entity's state. */
  readonly views: ReadOnlyViews;
  /**
   * The mailbox's part (mailbox.ts): read-only handlers it waits for (they returned a promise),
   * and whether its pump stopped until the last of them ends.
   */
  waiting = 0;
  parked = false;
  /** The state object a phase last began with, and its view. */
  #target: object | undefined;
  #targetView: unknown;

  constructor(type: string) {
    this.views = new ReadOnlyViews(type);
  }

  /** The guarded view of a state object. */
  viewOf(state: object): unknown {
    if (this.#target !== state) {
      this.#targetView = this.views.view(state);
      this.#target = state;
    }
    return this.#targetView;
  }
}

/** What a reading phase needs of the slot and its instance. */
interface ReadHolder {
  readonly def: { readonly type: string };
  reads: Reads | undefined;
}

/**
 * A read-only handler begins on `inst`: from the first one until the last one ends,
 * `this.state` is the guarded view (a plain assignment, so the instance keeps its shape; the
 * mailbox runs no writer meanwhile).
 */
export function beginRead(slot: ReadHolder, inst: object, handler: string): void {
  let r = slot.reads;
  if (r === undefined) {
    r = new Reads(slot.def.type);
    slot.reads = r;
  }
  if (r.count++ > 0) return;
  const holder = inst as { state: unknown };
  const state = holder.state;
  let view = state;
  if (state !== null && typeof state === "object") {
    r.views.handler = handler;
    view = r.viewOf(state);
  }
  r.state = state;
  r.view = view;
  holder.state = view;
}

/**
 * A read-only handler on `inst` ended. An assignment to `this.state` since it began is undone and
 * returned as the ReadOnlyStateError that fails this handler's message.
 */
export function endRead(slot: ReadHolder, inst: object): ReadOnlyStateError | undefined {
  const r = slot.reads;
  if (r === undefined || r.count === 0) return undefined;
  const holder = inst as { state: unknown; constructor: { type?: string } };
  let refused: ReadOnlyStateError | undefined;
  if (holder.state !== r.view) {
    refused = new ReadOnlyStateError(holder.constructor.type ?? "entity", "a read-only handler");
    holder.state = r.view;
  }
  if (--r.count === 0) {
    holder.state = r.state;
    r.state = undefined;
    r.view = undefined;
  }
  return refused;
}
