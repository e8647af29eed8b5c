// wallet.ts
import { randomUUID } from "node:crypto";
import { Entity, Sharding } from "@keyhold/actors";

interface WalletState {
  balance: number;
  recent: string[]; // ids of the last 100 operations applied, oldest first
}

export class Wallet extends Entity<WalletState> {
  static readonly type = "wallet";

  initialState(): WalletState {
    return { balance: 0, recent: [] };
  }

  credit(opId: string, amount: number): number {
    if (!this.state.recent.includes(opId)) {
      this.state.balance += amount;
      this.state.recent.push(opId);
      if (this.state.recent.length > 100) this.state.recent.shift();
    }
    return this.state.balance;
  }
}

const servers = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
await using client = await Sharding.connect({ servers, cluster: "shop", entities: [Wallet] });
const wallet = client.ref(Wallet, "acct-9");
const opId = randomUUID(); // one id per logical operation, reused by every retry
for (let attempt = 1; ; attempt++) {
  try {
    console.log(await wallet.credit(opId, 10));
    break;
  } catch (err) {
    if (attempt === 3) throw err;
  }
}
