// A node hosting Account (with lease settings other than the defaults) and a client that knows
// neither the class nor those settings.
// Run: npm start -w @keyhold/example-typed-client   (uses NATS_URL, or starts its own nats-server)
import { Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import { NatsServer } from "@keyhold/testing";
import { Account } from "./account.js";
import { serve } from "./web.js";

const server = process.env.NATS_URL ? undefined : await NatsServer.start();
const servers = process.env.NATS_URL ?? server!.url;
const cluster = `typed-client-${process.pid}`;
const node = await Sharding.start({
  servers,
  cluster,
  entities: [Account],
  heartbeatMs: 200,
  ttlMs: 1000,
  logger: silentLogger,
});
try {
  for (const line of await serve(servers, cluster)) console.log(line);
} finally {
  await node.close();
  await server?.close();
}
