// The entity, loaded only by the nodes that host it: its handlers' arguments are checked by
// zod schemas on the owning node before the handler runs.
import { Entity, type SchemaArgs } from "@keyhold/actors";
import { z } from "zod";

const schemas = {
  deposit: z.tuple([z.number().int().positive(), z.string().max(200).optional()]),
  withdraw: z.tuple([z.number().int().positive()]),
};

export class Account extends Entity<{ balance: number; log: string[] }> {
  static readonly type = "account";
  static readonly schemas = schemas;

  initialState() {
    return { balance: 0, log: [] };
  }

  deposit(...[amount, note]: SchemaArgs<typeof schemas.deposit>): number {
    this.state.balance += amount;
    if (note) this.state.log.push(note);
    return this.state.balance;
  }

  withdraw(...[amount]: SchemaArgs<typeof schemas.withdraw>): number {
    if (amount > this.state.balance) throw new RangeError(`balance is ${this.state.balance}`);
    this.state.balance -= amount;
    return this.state.balance;
  }

  balance(): number {
    return this.state.balance;
  }
}
