// What a web server that only sends would run: it imports the entity's TYPE, not its code, and
// gives no lease settings; it learns the cluster's from the nodes.
import { InvalidArgumentsError, Sharding } from "@keyhold/actors";
import { silentLogger } from "@keyhold/core";
import type { Account } from "./account.js";

export async function serve(servers: string, cluster: string): Promise<string[]> {
  const out: string[] = [];
  await using client = await Sharding.connect({ servers, cluster, logger: silentLogger });
  const { heartbeatMs, ttlMs } = client.node.config;
  out.push(`client learned heartbeatMs=${heartbeatMs} ttlMs=${ttlMs}`);

  const account = client.ref<Account>("account", "acct-7"); // typed from the type import alone
  out.push(`deposit -> ${await account.deposit(100, "salary")}`);
  out.push(`withdraw -> ${await account.withdraw(30)}`);
  try {
    // Compiles (a number), but the owner's schema wants a positive integer.
    await account.deposit(-5);
  } catch (err) {
    if (!(err instanceof InvalidArgumentsError)) throw err;
    out.push(
      `refused by the owner: ${err.issues.map((i) => `[${i.path.join(".")}] ${i.message}`).join("; ")}`,
    );
  }
  out.push(`balance -> ${await account.balance()}`);
  return out;
}
