// The "external service" of the example: a ledger reached over NATS that remembers, per
// account, the highest fencing token it has accepted, and refuses any call carrying a lower
// one. That is all a service needs to do to be safe from a stale owner.
import type { NatsConnection } from "@nats-io/transport-node";

export const LEDGER_SUBJECT = "example.ledger.charge";

export interface Charge {
  readonly account: string;
  readonly token: number;
  readonly amount: number;
}
export type ChargeReply = { ok: true } | { ok: false; reason: string };

/** Serves the ledger on `nc`; returns the entries it accepted. */
export function serveLedger(nc: NatsConnection): Charge[] {
  const highest = new Map<string, number>();
  const accepted: Charge[] = [];
  nc.subscribe(LEDGER_SUBJECT, {
    callback: (_err, msg) => {
      const c = msg.json<Charge>();
      const seen = highest.get(c.account) ?? 0;
      let reply: ChargeReply;
      if (c.token < seen)
        reply = { ok: false, reason: `token ${c.token} < ${seen} already seen for ${c.account}` };
      else {
        highest.set(c.account, c.token);
        accepted.push(c);
        reply = { ok: true };
      }
      msg.respond(JSON.stringify(reply));
    },
  });
  return accepted;
}

/** The client side, as an entity handler calls it. */
export async function charge(nc: NatsConnection, c: Charge): Promise<ChargeReply> {
  const m = await nc.request(LEDGER_SUBJECT, JSON.stringify(c), { timeout: 2000 });
  return m.json<ChargeReply>();
}
