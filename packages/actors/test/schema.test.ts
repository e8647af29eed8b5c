// Argument schemas on the simulated bus: the owner validates before the handler runs (locally,
// from another node, from a type-only client, from raw messages), answers InvalidArgumentsError
// with the issues, hands the schema's output to the handler; a client with the class checks
// early. Schemas from zod 4 and valibot 1, sync and async, in both forms.
import {
  Entity,
  InvalidArgumentsError,
  InvalidEntityError,
  nodeSubject,
  type Sharding,
  UnknownHandlerError,
} from "@keyhold/actors";
import { SimBus, VirtualClock } from "@keyhold/testing";
import { Packr } from "msgpackr";
import * as v from "valibot";
import { beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { Ledger } from "./fixtures/schema-entities.js";
import { drive, startOn } from "./support.js";

let bus: SimBus;
beforeEach(() => {
  bus = new SimBus(new VirtualClock());
});

async function cluster(): Promise<{ a: Sharding; b: Sharding }> {
  const a = await startOn(bus, "a", { entities: [Ledger] });
  const b = await startOn(bus, "b", { entities: [Ledger] });
  await bus.clock.advance(500);
  return { a, b };
}

/** A key owned by `owner`. */
function keyOwnedBy(s: Sharding, owner: string): string {
  for (let i = 0; ; i++) if (s.node.place(`k${i}`) === owner) return `k${i}`;
}

async function failure(p: Promise<unknown>): Promise<InvalidArgumentsError> {
  const err = await drive(bus, p).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentsError);
  return err as InvalidArgumentsError;
}

describe("the owner validates arguments before the handler runs", () => {
  it("locally and from another node: InvalidArgumentsError with the issues; the handler does not run", async () => {
    const { a, b } = await cluster();
    const k = keyOwnedBy(a, "a");
    // Local (a owns k) and remote (b sends to a) alike.
    for (const via of [a, b]) {
      const ref = via.ref(Ledger, k);
      const err = await failure(ref.add(1.5));
      expect(err.code).toBe("KH_INVALID_ARGUMENTS");
      expect(err.type).toBe("ledger");
      expect(err.handler).toBe("add");
      expect(err.issues).toHaveLength(1);
      expect(err.issues[0]!.path).toEqual([0]);
      expect(err.message).toMatch(/^Invalid arguments for ledger\.add: 0: /);
      await failure((ref as unknown as { add(x: unknown): Promise<number> }).add("1"));
      await failure(via.ask(Ledger, k, "add", []));
      await failure(via.ask(Ledger, k, "add", [1, 2]));
    }
    expect(await drive(bus, a.ref(Ledger, k).calls())).toBe(0);
    expect(await drive(bus, b.ref(Ledger, k).add(2))).toBe(2);
    expect(await drive(bus, a.ref(Ledger, k).calls())).toBe(1);
  });

  it("runs async schemas (zod refine, valibot checkAsync) and hands the output to the handler", async () => {
    const { a, b } = await cluster();
    const k = keyOwnedBy(a, "a");
    for (const via of [a, b]) {
      const ref = via.ref(Ledger, `${k}-${via.node.id}`);
      const neg = await failure(ref.addChecked(-1));
      expect(neg.issues[0]!.message).toBe("must not be negative");
      expect(await drive(bus, ref.addChecked(3))).toBe(3);
      const long = await failure(ref.rename("much-too-long"));
      expect(long.issues).toEqual([{ message: "at most 8 characters", path: [0] }]);
      expect(await drive(bus, ref.rename("short"))).toBe("short");
      // A transform: "40" arrives at the handler as the number 40.
      const text = ref as unknown as { addText(s: string): Promise<{ n: number; isNumber: boolean }> };
      expect(await drive(bus, text.addText("40"))).toEqual({ n: 43, isNumber: true });
      expect(await drive(bus, ref.calls())).toBe(3);
    }
  });

  it("an async schema keeps the entity's one-at-a-time order", async () => {
    const { a, b } = await cluster();
    for (const via of [a, b]) {
      const ref = via.ref(Ledger, `${keyOwnedBy(a, "a")}-order-${via.node.id}`);
      const results = await drive(bus, Promise.all([ref.addChecked(1), ref.add(10), ref.addChecked(100)]));
      expect(results).toEqual([1, 11, 111]);
    }
  });

  it("per-argument schemas: optional trailing arguments, too many refused, nested paths", async () => {
    const { a, b } = await cluster();
    const ref = b.ref(Ledger, keyOwnedBy(a, "a"));
    expect(await drive(bus, ref.label("ab"))).toBe("ab");
    expect(await drive(bus, ref.label("ab", 2))).toBe("abab");
    const zero = await failure(ref.label("ab", 0));
    expect(zero.issues.map((i) => i.path)).toEqual([[1]]);
    const both = await failure(b.ask(Ledger, ref.key, "label", ["", 0]));
    expect(both.issues.map((i) => i.path)).toEqual([[0], [1]]);
    const many = await failure(b.ask(Ledger, ref.key, "label", ["a", 1, 2]));
    expect(many.issues[0]!.message).toBe("Expected at most 2 arguments, got 3");
    const nested = await failure(b.ask(Ledger, ref.key, "move", [{ to: "x", amount: 1.5 }]));
    expect(nested.issues.map((i) => i.path)).toEqual([[0, "amount"]]);
    expect(await drive(bus, ref.move({ to: "x", amount: 2 }))).toBe("2 to x");
  });
});

describe("clients", () => {
  it("a client with the class checks early: nothing is sent", async () => {
    await cluster();
    const c = await startOn(bus, "c", { entities: [Ledger] }, true);
    const err = await failure(c.ref(Ledger, "k1").add(0.5));
    expect(err.issues[0]!.path).toEqual([0]);
    expect(c.stats().router.asks).toBe(0);
    expect(await drive(bus, c.ref(Ledger, "k1").add(4))).toBe(4);
    expect(c.stats().router.asks).toBe(1);
  });

  it("a type-only reference: the owner checks handler names and arguments", async () => {
    const { a } = await cluster();
    const c = await startOn(bus, "c", { entities: [] }, true);
    const ref = c.ref<Ledger>("ledger", "k2");
    expect(ref.type).toBe("ledger");
    expect(await drive(bus, ref.add(5))).toBe(5);
    expect(await drive(bus, ref.add(2))).toBe(7);
    const err = await failure(ref.add(0.1));
    expect(err.issues).toHaveLength(1);
    expect(c.stats().router.asks).toBe(3); // the client could not check: it sent all three
    const unknown = await drive(bus, (ref as unknown as { sub(n: number): Promise<number> }).sub(1)).catch(
      (e: unknown) => e,
    );
    expect(unknown).toBeInstanceOf(UnknownHandlerError);
    // tell by type name reaches the owner too
    ref.tell("add", 3);
    await bus.clock.advance(50);
    expect(await drive(bus, a.ref(Ledger, "k2").add(0))).toBe(10);
    // a malformed type name fails at once
    expect(() => c.ref<Ledger>("no spaces", "k")).toThrow(/entity type name/);
  });
});

describe("raw messages from a malicious client", () => {
  it("wrong arguments sent straight to the owner's subject are refused with the issues", async () => {
    const { a } = await cluster();
    const k = keyOwnedBy(a, "a");
    const raw = bus.connect("mallory");
    const packr = new Packr({ useRecords: false, mapsAsObjects: true });
    let n = 0;
    const send = async (h: string, args: unknown[]) => {
      const msg = { v: 1, k: "ask", id: `mallory-${n++}`, t: "ledger", key: k, h, a: args, hop: 0 };
      const reply = await drive(bus, raw.request(nodeSubject("t", "a"), packr.pack(msg), { timeout: 1000 }));
      return packr.unpack(reply) as { k: string; e?: { code: string; details?: unknown }; r?: unknown };
    };
    for (const args of [["1"], [Number.NaN], [{ valueOf: 1 }], [], [Number.POSITIVE_INFINITY], [1, 2, 3]]) {
      const r = await send("add", args);
      expect(r.k).toBe("err");
      expect(r.e?.code).toBe("KH_INVALID_ARGUMENTS");
      expect(Array.isArray(r.e?.details)).toBe(true);
    }
    const bad = await send("move", [{ to: 1, amount: "x", extra: { deep: [1, 2] } }]);
    expect(bad.e?.code).toBe("KH_INVALID_ARGUMENTS");
    expect((bad.e!.details as { path: unknown[] }[]).map((d) => d.path)).toEqual([
      [0, "to"],
      [0, "amount"],
    ]);
    expect(await drive(bus, a.ref(Ledger, k).calls())).toBe(0);
    const ok = await send("add", [9]);
    expect(ok).toMatchObject({ k: "ok", r: 9 });
  });
});

describe("declaring schemas", () => {
  class Base extends Entity<number> {
    static readonly type: string = "base";
    initialState() {
      return 0;
    }
    add(by: number) {
      return by;
    }
  }
  const start = (cls: unknown) => startOn(bus, "x", { entities: [cls as typeof Base] });

  it("refuses a schema for a name that is not a handler, or a value that is not a schema", async () => {
    class Stray extends Base {
      static override readonly type = "stray";
      static readonly schemas = { sub: z.tuple([z.number()]) };
    }
    await expect(start(Stray)).rejects.toThrow(InvalidEntityError);
    await expect(start(Stray)).rejects.toThrow(/names "sub", which is not a handler/);
    class NotSchema extends Base {
      static override readonly type = "not-schema";
      static readonly schemas = { add: { parse: () => [] } };
    }
    await expect(start(NotSchema)).rejects.toThrow(/must be a Standard Schema/);
    class NotObject extends Base {
      static override readonly type = "not-object";
      static readonly schemas = [v.number()];
    }
    await expect(start(NotObject)).rejects.toThrow(/must be an object of schemas/);
  });

  it("a whole-list schema that does not produce an array is an InvalidArgumentsError, not a crash", async () => {
    class Scalar extends Base {
      static override readonly type = "scalar";
      static readonly schemas = { add: z.array(z.number()).transform((a) => a[0]) };
    }
    const s = await startOn(bus, "s", { entities: [Scalar] });
    const err = await failure(s.ask(Scalar as typeof Base, "k", "add", [1]));
    expect(err.issues[0]!.message).toMatch(/must produce an array/);
  });
});
