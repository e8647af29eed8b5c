// errors.ts
import { ActorError, ActorErrorCode, HandlerError, MailboxFullError, Sharding } from "@keyhold/actors";
import { Cart } from "./cart.js";

const servers = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
await using client = await Sharding.connect({ servers, cluster: "shop", entities: [Cart] });
const cart = client.ref(Cart, "user-7");

try {
  await cart.add("sku-1", 0);
} catch (err) {
  if (err instanceof HandlerError) {
    // The handler threw: same message, the thrown error's name in remoteName.
    console.log(`${err.code} ${err.remoteName}: ${err.message}`); // KH_HANDLER_FAILED RangeError: quantity must ...
  } else if (err instanceof MailboxFullError) {
    console.log("cart busy, try later"); // retryable
  } else if (err instanceof ActorError && err.code === ActorErrorCode.DeadlineExceeded) {
    console.log("no answer in time; the add may or may not have happened");
  } else {
    throw err;
  }
}

/** Retries errors marked retryable, with exponential backoff. */
async function withRetry<T>(call: () => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof ActorError) || !err.retryable || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
    }
  }
}

console.log(await withRetry(() => cart.contents()));
