// call.ts
import { Sharding } from "@keyhold/actors";
import { Cart } from "./cart.js";

const servers = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
await using client = await Sharding.connect({ servers, cluster: "shop", entities: [Cart] });

const cart = client.ref(Cart, "user-42"); // EntityRef<Cart>

const n: number = await cart.add("sku-1", 2); // ask: resolves with the handler's result
await cart.add("sku-2"); // optional parameters stay optional

// The same ask with options: its own deadline, or an AbortSignal.
await cart.ask("add", ["sku-1", 1], { timeout: 2_000 });
const items = await cart.ask("contents", [], { signal: AbortSignal.timeout(500) });

cart.tell("remove", "sku-2"); // tell: returns at once, no result, no error report

console.log(n, items, await cart.contents());
