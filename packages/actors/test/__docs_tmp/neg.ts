import type { Sharding } from "@keyhold/actors";
import { Cart } from "./cart.js";

declare const s: Sharding;
const cart = s.ref(Cart, "k");
// @ts-expect-error wrong argument type
void cart.add(1);
// @ts-expect-error not a handler
void cart.initialState;
// @ts-expect-error private helper
void cart.touch;
// @ts-expect-error wrong tuple
void cart.ask("add", [1]);
const x: Promise<number> = cart.add("a");
const y: Promise<boolean> = cart.ask("remove", ["a"], { timeout: 5 });
cart.tell("add", "a", 3);
// @ts-expect-error tell args checked
cart.tell("add", 3);
void x;
void y;
