// Nodes and clients over TLS with the how-to's server configuration and certificates made here
// with openssl: a CA, a server certificate for 127.0.0.1 and localhost, a client certificate.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NatsServer, waitFor } from "@keyhold/testing";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Counter } from "../fixtures/entities.js";
import {
  type Certificates,
  CLIENT_INBOX,
  connectClient,
  credentials,
  docConfig,
  makeCertificates,
  startNode,
} from "./support.js";

/** Where the how-to's configuration expects the certificate files. */
const DOC_TLS_DIR = "/etc/nats/tls";

let dir: string;
let certs: Certificates;
let config: Record<string, unknown>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyhold-tls-"));
  certs = await makeCertificates(dir);
  const tls = JSON.parse(JSON.stringify(await docConfig("tls")).replaceAll(DOC_TLS_DIR, dir));
  config = { ...(await docConfig("accounts")), ...tls };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("TLS", () => {
  it("carries nodes and clients, with client certificates verified", async () => {
    await using server = await NatsServer.start({ config });
    const url = `tls://127.0.0.1:${server.port}`;
    const tls = { caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey };
    const nodeUser = { ...credentials(config, "orders-node"), tls };
    await using a = await startNode(url, "orders", { natsOptions: nodeUser });
    await using b = await startNode(url, "orders", { natsOptions: nodeUser });
    await using client = await connectClient(url, "orders", {
      natsOptions: { ...credentials(config, "orders-client"), inboxPrefix: CLIENT_INBOX, tls },
    });
    await waitFor(() => client.node.members().length === 2 && a.node.members().length === 2);
    for (let i = 0; i < 16; i++) expect(await client.ref(Counter, `t${i}`).add(2)).toBe(2);
    expect(b.node.members()).toHaveLength(2);

    // The server insists on TLS and on a client certificate.
    const probe = await connect({ servers: url, ...credentials(config, "orders-client"), tls });
    expect(probe.info?.tls_required).toBe(true);
    expect(probe.info?.tls_verify).toBe(true);
    await probe.close();
  });

  it("refuses a client that does not trust the CA or has no client certificate", async () => {
    await using server = await NatsServer.start({ config });
    const url = `tls://127.0.0.1:${server.port}`;
    const user = credentials(config, "orders-client");
    // No TLS options: nats.js upgrades to TLS as the server requires, but does not trust its
    // certificate, signed by the test's own CA.
    await expect(connect({ servers: url, ...user, reconnect: false, timeout: 5000 })).rejects.toThrow(
      /unable to verify/,
    );
    // Trusts the CA, presents no certificate of its own: the server's `verify` turns it away.
    await expect(
      connect({ servers: url, ...user, tls: { caFile: certs.ca }, reconnect: false, timeout: 5000 }),
    ).rejects.toThrow(/bad certificate|certificate required|ECONNRESET/);
  });
});
