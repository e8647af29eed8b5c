// Compile-time checks of typed references, checked by `tsc` (npm run typecheck): a reference by
// type name needs only the entity's type, argument and result types follow the handlers, and
// wrong ones do not compile (each `@ts-expect-error` fails the type check if the line compiles).
// The runtime part only makes sure the file runs; nothing here is sent.
import { Entity, type EntityRef, type Sharding } from "@keyhold/actors";
import { describe, expectTypeOf, it } from "vitest";
import { z } from "zod";
import type { Ledger } from "./fixtures/schema-entities.js";
import type { Counter } from "./support.js";

/** A class whose schema does not fit its handler: refused where the class is used. */
class Misfit extends Entity<number> {
  static readonly type = "misfit";
  static readonly schemas = { add: z.tuple([z.string()]) };
  initialState() {
    return 0;
  }
  add(by: number) {
    return by;
  }
}

// Never called: a function body is type-checked without running.
function typeOnly(client: Sharding): void {
  const c = client.ref<Counter>("counter", "k");
  expectTypeOf(c).toEqualTypeOf<EntityRef<Counter>>();
  expectTypeOf(c.add).parameters.toEqualTypeOf<[by: number]>();
  expectTypeOf(c.add(5)).toEqualTypeOf<Promise<number>>();
  expectTypeOf(c.get()).toEqualTypeOf<Promise<number>>();
  expectTypeOf(c.ask("add", [1], { timeout: 100 })).toEqualTypeOf<Promise<number>>();
  // @ts-expect-error a string is not a number
  void c.add("5");
  // @ts-expect-error add takes one argument
  void c.add();
  // @ts-expect-error no such handler
  void c.sub(1);
  // @ts-expect-error lifecycle hooks and state are not handlers
  void c.initialState();
  // @ts-expect-error the args of ask are checked too
  void c.ask("add", ["1"]);
  // @ts-expect-error and so are those of tell
  c.tell("add", "1");

  // Handler parameters that follow from their schemas.
  const l = client.ref<Ledger>("ledger", "k");
  expectTypeOf(l.add).parameters.toEqualTypeOf<[number]>();
  expectTypeOf(l.label).parameters.toEqualTypeOf<[string, (number | undefined)?]>();
  expectTypeOf(l.move).parameters.toEqualTypeOf<[{ to: string; amount: number }]>();
  expectTypeOf(l.addText(1)).toEqualTypeOf<Promise<{ n: number; isNumber: boolean }>>();
  // @ts-expect-error the nested object is checked
  void l.move({ to: "x", amount: "1" });
  void l.label("x");
  void l.label("x", 2);
  // @ts-expect-error the first argument is a string
  void l.label(1);
  // @ts-expect-error at most two arguments
  void l.label("x", 2, 3);

  // The class form keeps working, and checks that schemas fit the handlers.
  expectTypeOf(client.ref(Misfit as never, "k")).toBeObject();
  // @ts-expect-error the schema of add produces [string], add takes a number
  client.ref(Misfit, "k");
}

describe("typed references (checked by tsc)", () => {
  it("type-checks", () => {
    expectTypeOf(typeOnly).toBeFunction();
  });
});
