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
