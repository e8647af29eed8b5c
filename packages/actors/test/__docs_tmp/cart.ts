// cart.ts
import { Entity } from "@keyhold/actors";

export interface CartState {
  items: Record<string, number>; // sku -> quantity
  updatedAt: Date | null;
}

export class Cart extends Entity<CartState> {
  static readonly type = "cart";

  initialState(): CartState {
    return { items: {}, updatedAt: null };
  }

  add(sku: string, quantity = 1): number {
    if (!Number.isInteger(quantity) || quantity <= 0) {
      throw new RangeError(`quantity must be a positive integer, got ${quantity}`);
    }
    const next = (this.state.items[sku] ?? 0) + quantity;
    this.state.items[sku] = next;
    this.#touch();
    return next;
  }

  remove(sku: string): boolean {
    if (!(sku in this.state.items)) return false;
    delete this.state.items[sku];
    this.#touch();
    return true;
  }

  contents(): Record<string, number> {
    return { ...this.state.items }; // a copy, see "Keep state serializable"
  }

  async checkout(): Promise<number> {
    const count = Object.values(this.state.items).reduce((a, b) => a + b, 0);
    await new Promise((resolve) => setTimeout(resolve, 10)); // stands in for a call to a payment service
    this.state.items = {};
    this.#touch();
    return count;
  }

  // Not a handler: #private methods are invisible to handler discovery.
  #touch(): void {
    this.state.updatedAt = new Date();
  }
}
