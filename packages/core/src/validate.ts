// The small checks every layer's option parsing and wire decoding share. @keyhold/actors uses
// them too (they are exported), so a rule such as "what an id may look like" lives here once.
import { InvalidArgumentError, InvalidOptionError } from "./errors.js";
import type { Key } from "./hash.js";

/** Ids and cluster names become NATS subject tokens, hence the narrow alphabet. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** A plain msgpack map (an object that is not an array). */
export function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** A string matching ID_PATTERN: a member id, cluster name or entity type. */
export function isId(x: unknown): x is string {
  return typeof x === "string" && ID_PATTERN.test(x);
}

/** A safe integer from 0 to `max`. */
export function isNat(x: unknown, max: number): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0 && x <= max;
}

/**
 * An integer option: `def` when unset, else a safe integer from `min` to `max`; anything else
 * throws InvalidOptionError naming the option, the rule and the value.
 */
export function intOption(name: string, value: unknown, def: number, min: number, max: number): number {
  if (value === undefined) return def;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(name, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** Throws InvalidArgumentError unless `key` can be placed: a string or a Uint8Array. */
export function checkPlacementKey(key: Key): void {
  if (typeof key !== "string" && !(key instanceof Uint8Array))
    throw new InvalidArgumentError("key", "a string or a Uint8Array", key);
}
