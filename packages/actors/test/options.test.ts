// Options and entity classes are validated at start, with errors that name what is wrong.
import { Entity, InvalidEntityError, Sharding } from "@keyhold/actors";
import { InvalidOptionError } from "@keyhold/core";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { describe, expect, it } from "vitest";
import { Counter } from "./support.js";

const base = () => ({
  transport: new SimBus(new VirtualClock()).connect("x"),
  cluster: "t",
  entities: [Counter],
});

describe("Sharding options", () => {
  it.each([
    ["mailboxSize", 0],
    ["concurrency", -1],
    ["askTimeoutMs", 1.5],
    ["idleMs", "soon"],
    ["maxActive", 0],
    ["handoffTimeoutMs", Number.NaN],
    ["ringSize", 0],
    ["heartbeatMs", 5],
    ["startupBufferBytes", -1],
    ["startupBufferBytes", 2 ** 33],
    ["groupCommit", "no"],
    ["groupCommit", 0],
  ])("rejects %s = %s with an error naming it", async (option, value) => {
    const err = await Sharding.start({ ...base(), [option]: value } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).option).toBe(option);
    expect((err as Error).message).toContain(`\`${option}\``);
  });

  it("rejects a bad cluster name and a missing connection", async () => {
    await expect(Sharding.start({ ...base(), cluster: "has space" })).rejects.toThrow(/`cluster`/);
    await expect(Sharding.start({ cluster: "t", entities: [Counter] })).rejects.toThrow(/`servers`/);
  });

  it("rejects entity classes without a type, without handlers, or sharing a type", async () => {
    class NoType extends Entity<number> {
      initialState() {
        return 0;
      }
      inc() {
        return 1;
      }
    }
    class NoHandlers extends Entity<number> {
      static readonly type = "empty";
      initialState() {
        return 0;
      }
    }
    class Twin extends Entity<number> {
      static readonly type = "counter";
      initialState() {
        return 0;
      }
      x() {
        return 1;
      }
    }
    await expect(Sharding.start({ ...base(), entities: [NoType as never] })).rejects.toThrow(
      /static readonly type/,
    );
    await expect(Sharding.start({ ...base(), entities: [NoHandlers] })).rejects.toThrow(InvalidEntityError);
    await expect(Sharding.start({ ...base(), entities: [Counter, Twin] })).rejects.toThrow(
      /Two entity classes use type "counter"/,
    );
    await expect(Sharding.start({ ...base(), entities: [] })).rejects.toThrow(/at least one entity class/);
  });
});

describe("entity definitions", () => {
  it("refuses handler names that entity references use themselves", async () => {
    class Clash extends Entity<number> {
      static readonly type = "clash";
      initialState() {
        return 0;
      }
      tell() {
        return 1;
      }
    }
    await expect(Sharding.start({ ...base(), entities: [Clash] })).rejects.toThrow(/may not be named "tell"/);
  });

  it("refuses replicas outside 1..7", async () => {
    class Many extends Entity<number> {
      static readonly type = "many";
      static readonly replicas = 9;
      initialState() {
        return 0;
      }
      x() {
        return 1;
      }
    }
    await expect(Sharding.start({ ...base(), entities: [Many] })).rejects.toThrow(/static replicas/);
  });
});
