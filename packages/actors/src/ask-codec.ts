// The two messages of the ask hot path, encoded without an object per message: the same bytes
// as wire.ts `encode` of `{ v: 1, k: "ask", ... }` and `{ v: 1, k: "ok", r }` (written by hand
// in fast-pack.ts when the values are plain scalars, by packr otherwise).
import { packAskMessage, packAskSeq, packOkMessage } from "./fast-pack.js";
import { assertSerializable } from "./serializable.js";

/**
 * serializable.ts `assertSerializable` of an ask's arguments, without building its error labels
 * per ask: arguments that are all strings, numbers, booleans or undefined (most asks) pass at
 * once, and anything else gets the full check.
 */
export function assertArgs(args: readonly unknown[], type: string, h: string): void {
  if (Array.isArray(args)) {
    let plain = true;
    for (let i = 0; i < args.length && plain; i++) {
      const t = typeof args[i];
      plain = t === "string" || t === "number" || t === "boolean" || t === "undefined";
    }
    if (plain) return;
  }
  assertSerializable(args, `the arguments of ${type}.${h}`, "args");
}

/** `encode` of an ask (the same bytes), without an object per message (fast-pack.ts). */
export function encodeAsk(
  id: string,
  t: string,
  key: string,
  h: string,
  a: readonly unknown[],
  hop: number,
): Uint8Array {
  return packAskMessage(id, t, key, h, a, hop);
}

/**
 * `encodeAsk` of the id `prefix + seq.toString(36)` (remote-ask.ts MessageIds): the digits go
 * straight into the message, no id string is built (the retry loop builds it if it runs).
 */
export function encodeAskSeq(
  prefix: string,
  seq: number,
  t: string,
  key: string,
  h: string,
  a: readonly unknown[],
  hop: number,
): Uint8Array {
  return packAskSeq(prefix, seq, t, key, h, a, hop);
}

/** `encode` of `{ v: 1, k: "ok", r }` (the same bytes), without an object per reply. */
export function encodeOk(r: unknown): Uint8Array {
  return packOkMessage(r);
}
