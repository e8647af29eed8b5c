// The two messages of the ask hot path, encoded without an object per message: the same bytes
// as wire.ts `encode` of `{ v: 1, k: "ask", ... }` and `{ v: 1, k: "ok", r }` (written by hand
// in fast-pack.ts when the values are plain scalars, by packr otherwise).
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

// The encoders live in fast-pack.ts: `encodeAsk` (packAskMessage), `encodeAskSeq` (packAskSeq:
// the id `prefix + seq.toString(36)` of remote-ask.ts MessageIds, its digits written straight
// into the message) and `encodeOk` (packOkMessage), each the same bytes as wire.ts `encode`.
export {
  packAskMessage as encodeAsk,
  packAskSeq as encodeAskSeq,
  packOkMessage as encodeOk,
} from "./fast-pack.js";
