// The two messages of the ask hot path, encoded without an object per message: the same bytes
// as wire.ts `encode` of `{ v: 1, k: "ask", ... }` and `{ v: 1, k: "ok", r }`.
import { assertSerializable } from "./serializable.js";
import { packr } from "./wire.js";

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

// One map of each per process, refilled for every message: encoding an ask or an `ok` reply
// makes no object (packing is synchronous, so one map serves every call).
const askMap = { v: 1, k: "ask", id: "", t: "", key: "", h: "", a: [] as readonly unknown[], hop: 0 };
const okMap = { v: 1, k: "ok", r: undefined as unknown };

/** `encode` of an ask (the same bytes), without an object per message. */
export function encodeAsk(
  id: string,
  t: string,
  key: string,
  h: string,
  a: readonly unknown[],
  hop: number,
): Uint8Array {
  askMap.id = id;
  askMap.t = t;
  askMap.key = key;
  askMap.h = h;
  askMap.a = a;
  askMap.hop = hop;
  try {
    return packr.pack(askMap);
  } finally {
    askMap.a = [];
  }
}

/** `encode` of `{ v: 1, k: "ok", r }` (the same bytes), without an object per reply. */
export function encodeOk(r: unknown): Uint8Array {
  okMap.r = r;
  try {
    return packr.pack(okMap);
  } finally {
    okMap.r = undefined;
  }
}
