// Telemetry enabled without @opentelemetry/api installed (the import fails): start() rejects
// with TelemetryUnavailableError, and with telemetry off the missing package is never touched.
import { TelemetryUnavailableError } from "@keyhold/actors";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { describe, expect, it, vi } from "vitest";
import { Counter, drive, startOn } from "./support.js";

vi.mock("@opentelemetry/api", () => {
  throw new Error("Cannot find package '@opentelemetry/api'");
});

describe("telemetry without @opentelemetry/api", () => {
  it("enabled: start() rejects with KH_TELEMETRY_UNAVAILABLE; off: works", async () => {
    const bus = new SimBus(new VirtualClock());
    const err = await startOn(bus, "a", { telemetry: { enabled: true } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TelemetryUnavailableError);
    expect((err as TelemetryUnavailableError).code).toBe("KH_TELEMETRY_UNAVAILABLE");
    expect((err as Error).message).toContain("npm install @opentelemetry/api");

    const a = await startOn(bus, "a");
    expect(await drive(bus, a.ref(Counter, "k").add(1))).toBe(1);
    await drive(bus, a.close());
  });
});
