// A wallet per account: the kind of entity an application writes, tested in ../test with
// TestCluster. Three copies, so an acknowledged deposit survives the loss of its node.
import { Entity } from "@keyhold/actors";

export interface WalletState {
  balance: number;
  /** Ids of payments already applied, so a client that retries a payment is not charged twice. */
  applied: string[];
}

export class InsufficientFundsError extends Error {
  constructor(balance: number, amount: number) {
    super(`balance ${balance} is less than ${amount}`);
    this.name = "InsufficientFundsError";
  }
}

export class Wallet extends Entity<WalletState> {
  static readonly type = "wallet";
  static readonly replicas = 3;

  initialState(): WalletState {
    return { balance: 0, applied: [] };
  }

  deposit(amount: number): number {
    if (!Number.isSafeInteger(amount) || amount <= 0)
      throw new RangeError(`amount must be a positive integer, got ${amount}`);
    this.state.balance += amount;
    return this.state.balance;
  }

  /** Pays `amount` once per `paymentId`; a repeated id returns the balance without paying again. */
  pay(paymentId: string, amount: number): number {
    if (this.state.applied.includes(paymentId)) return this.state.balance;
    if (amount > this.state.balance) throw new InsufficientFundsError(this.state.balance, amount);
    this.state.balance -= amount;
    this.state.applied.push(paymentId);
    if (this.state.applied.length > 100) this.state.applied.shift();
    return this.state.balance;
  }

  balance(): number {
    return this.state.balance;
  }
}
