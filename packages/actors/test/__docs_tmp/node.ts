// node.ts: a process that hosts carts
import { Sharding } from "@keyhold/actors";
import { Cart } from "./cart.js";

const servers = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

const sharding = await Sharding.start({
  servers,
  cluster: "shop",
  entities: [Cart],
});
console.log(`node ${sharding.node.id} is up; members: ${sharding.node.members().join(", ")}`);

// On SIGTERM, hand the carts over to the other nodes before exiting.
process.once("SIGTERM", () => {
  sharding.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
});
