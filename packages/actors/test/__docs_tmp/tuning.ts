// tuning.ts
import { Sharding } from "@keyhold/actors";
import { Cart } from "./cart.js";

const servers = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

const sharding = await Sharding.start({
  servers,
  cluster: "shop",
  entities: [Cart],
  mailboxSize: 200, // fail fast when one cart is flooded
  concurrency: 64, // at most 64 carts running a handler at once on this node
  idleMs: 60_000, // drop instances idle for a minute (their state stays in memory)
  maxActive: 20_000, // and never keep more than 20,000 live instances
  handoffTimeoutMs: 5_000, // how long a hand-off may take before serving without it
});

const s = sharding.stats();
console.log(
  `active ${s.host.active}/${s.host.known} entities, mailbox-full ${s.host.mailboxFull}, ` +
    `retries ${s.router.retries}, failed ${s.router.failed}`,
);
for (const h of sharding.handoffs().slice(-5)) {
  console.log(`partition ${h.partition}: ${h.records} records in ${h.ms} ms from ${h.from.join(", ")}`);
}
await sharding.close();
