// One ask of a request batch on its way from the inbox to its reply, as one object: it is the
// dispatcher's Outcome (dispatch.ts), and it holds what the reply needs (the reply subject and
// correlation number, the dedupe entry), so serving an ask makes no closure.
import { encodeOk } from "./ask-codec.js";
import type { DedupeEntry } from "./dedupe.js";
import type { Outcome } from "./dispatch.js";
import { QuorumError, toWireError } from "./errors.js";
import type { Inbound, InboundServices } from "./inbound.js";
import { encode, type HandlerMessage } from "./wire.js";

export class InboundAsk implements Outcome {
  constructor(
    readonly inbound: Inbound,
    readonly svc: InboundServices,
    readonly msg: HandlerMessage,
    /** The dedupe cache's entry for the ask's id (undefined with deduplication off). */
    readonly entry: DedupeEntry | undefined,
    readonly rs: string,
    readonly q: number,
  ) {}

  ok(result: unknown): void {
    this.inbound.stats.served++;
    const out = encodeOk(result);
    if (this.entry !== undefined) this.svc.dedupe.close(this.entry, out);
    this.inbound.replyInBatch(this.svc, this.rs, this.q, out);
  }

  failed(error: unknown): void {
    this.inbound.stats.served++;
    const out = encode({ v: 1, k: "err", e: toWireError(error) });
    // A missed replica quorum is not remembered: the router retries it (router.ts), and the
    // entity's recent asks answer the retry without applying it again.
    if (this.entry !== undefined && error instanceof QuorumError) this.svc.dedupe.forget(this.entry, out);
    else if (this.entry !== undefined) this.svc.dedupe.close(this.entry, out);
    this.inbound.replyInBatch(this.svc, this.rs, this.q, out);
  }

  moved(): void {
    this.inbound.stats.redirected++;
    const out = encode({ v: 1, k: "moved", owner: this.svc.ownerOf(this.msg.key) ?? null });
    if (this.entry !== undefined) this.svc.dedupe.forget(this.entry, out);
    this.inbound.replyInBatch(this.svc, this.rs, this.q, out);
  }
}
