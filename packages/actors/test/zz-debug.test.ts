import { it } from "vitest";
import { scenario } from "./reacquire.property.test.js";

it("debug", async () => {
  const ops = JSON.parse(process.env.DBG_OPS!);
  await scenario(ops, Number(process.env.DBG_SEED), (process.env.DBG_RESUME as "io-first") ?? "io-first", (m) => console.log(m));
}, 120000);
