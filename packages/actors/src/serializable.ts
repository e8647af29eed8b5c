// The check that a user value (arguments, results, state) survives the msgpack trip unchanged in
// meaning, run before anything leaves the handler that produced it.
import { NotSerializableError } from "./errors.js";

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * Throws NotSerializableError unless `value` survives msgpack unchanged in meaning: primitives
 * (not symbols; bigints within 64 bits), Date, Uint8Array, arrays and plain objects, acyclic
 * and at most 64 deep. Map, Set and class instances are refused rather than silently turned
 * into plain objects on the other side.
 */
export function assertSerializable(value: unknown, what: string, path = "value", depth = 0): void {
  if (depth > 64) throw new NotSerializableError(what, path, "nested more than 64 levels (a cycle?)");
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
    case "undefined":
      return;
    case "bigint":
      if (value < INT64_MIN || value > UINT64_MAX)
        throw new NotSerializableError(what, path, "a bigint beyond 64 bits");
      return;
    case "function":
      throw new NotSerializableError(what, path, "a function");
    case "symbol":
      throw new NotSerializableError(what, path, "a symbol");
  }
  if (value === null || value instanceof Date || value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) assertSerializable(value[i], what, `${path}[${i}]`, depth + 1);
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as object).constructor?.name ?? "an object with a prototype";
    throw new NotSerializableError(
      what,
      path,
      `a ${name} (only plain objects, arrays, Date and Uint8Array travel)`,
    );
  }
  for (const k of Object.keys(value as object)) {
    assertSerializable((value as Record<string, unknown>)[k], what, `${path}.${k}`, depth + 1);
  }
}
