// The example's client against a real nats-server and a node in its own process: it learns the
// node's lease settings and gets the owner's schema verdict, with only a type import of Account.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { NatsServer, ShardingProcess } from "@keyhold/testing";
import { expect, it } from "vitest";
import { serve } from "../src/web.js";

const ENTITIES = fileURLToPath(new URL("./entities.ts", import.meta.url));

it("a type-only, settings-free client sends to a node and is refused bad arguments by it", async () => {
  await using server = await NatsServer.start();
  const node = await ShardingProcess.spawn(
    { servers: server.url, cluster: "typed", heartbeatMs: 200, ttlMs: 1000 },
    ENTITIES,
  );
  try {
    expect(await serve(server.url, "typed")).toEqual([
      "client learned heartbeatMs=200 ttlMs=1000",
      "deposit -> 100",
      "withdraw -> 70",
      expect.stringMatching(/^refused by the owner: \[0\] /),
      "balance -> 70",
    ]);
  } finally {
    await node.kill();
  }
  // The client module loads nothing of the entity at run time.
  const web = await readFile(fileURLToPath(new URL("../src/web.ts", import.meta.url)), "utf8");
  expect(web).toMatch(/^import type \{ Account \} from "\.\/account\.js";$/m);
  expect(web).not.toMatch(/^import \{[^}]*Account[^}]*\} from/m);
}, 60_000);
