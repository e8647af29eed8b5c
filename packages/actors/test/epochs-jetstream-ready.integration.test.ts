// openEpochs in "auto" mode against a NATS cluster whose JetStream cannot answer yet: the meta
// group has no quorum (two of three servers down), as while a loaded cluster still elects its
// meta leader at start. The server advertises JetStream, so the node must wait for its API and
// take KV epochs, not settle for local stamps (which silently drop the NATS-split guarantee; a CI
// run of test/safety/epochs-partition.test.ts saw every node start that way).
import { silentLogger, systemClock } from "@keyhold/core";
import { NatsCluster } from "@keyhold/testing";
import { connect } from "@nats-io/transport-node";
import { expect, it } from "vitest";
import { openEpochs } from "../src/epochs.js";

it("a server that advertises JetStream is waited for while its meta group has no leader", async () => {
  const cluster = await NatsCluster.start(3, { jetstream: true });
  try {
    await cluster.stop(1);
    await cluster.stop(2);
    const nc = await connect({ servers: cluster.urls[0]! });
    try {
      expect((nc.info as { jetstream?: boolean }).jetstream).toBe(true);
      const opening = openEpochs({
        mode: "auto",
        connection: nc,
        cluster: "ready",
        nodeId: "n0",
        clock: systemClock,
        logger: silentLogger,
        timeoutMs: 1000,
      });
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 2000));
      await cluster.restart(1);
      await cluster.restart(2);
      const epochs = await opening;
      expect(epochs.kind).toBe("jetstream");
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
      expect(await epochs.take(0, 0)).toBeGreaterThan(0);
    } finally {
      await nc.close();
    }
  } finally {
    await cluster.close();
  }
}, 60_000);
