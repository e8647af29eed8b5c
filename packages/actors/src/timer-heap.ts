// A binary min-heap of timers ordered by their `at` time, where each item knows its own slot in
// the array so it can be moved or removed in O(log n). One of these per node holds every pending
// reminder (reminders.ts): a million reminders cost one clock timer, not a million.

/** An item the heap can hold: `at` orders it, `i` is its index in the heap (-1 when not in it). */
export interface HeapItem {
  at: number;
  i: number;
}

export class TimerHeap<T extends HeapItem> {
  readonly #a: T[] = [];

  get size(): number {
    return this.#a.length;
  }

  /** The item due first, without removing it. */
  peek(): T | undefined {
    return this.#a[0];
  }

  /** Adds an item that is not in the heap (throws if it is, which would corrupt the order). */
  push(item: T): void {
    if (item.i >= 0) throw new Error("TimerHeap.push: item is already in a heap");
    item.i = this.#a.length;
    this.#a.push(item);
    this.#up(item.i);
  }

  /** Removes and returns the item due first. */
  pop(): T | undefined {
    const top = this.#a[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /** Removes an item; false when it was not in this heap. */
  remove(item: T): boolean {
    const i = item.i;
    if (i < 0 || this.#a[i] !== item) return false;
    const last = this.#a.pop()!;
    item.i = -1;
    if (last !== item) {
      this.#a[i] = last;
      last.i = i;
      this.#down(i);
      this.#up(last.i);
    }
    return true;
  }

  /** Moves an item to a new time, adding it when it is not in the heap. */
  schedule(item: T, at: number): void {
    item.at = at;
    if (item.i < 0 || this.#a[item.i] !== item) {
      item.i = -1;
      this.push(item);
      return;
    }
    this.#down(item.i);
    this.#up(item.i);
  }

  /** Empties the heap. */
  clear(): void {
    for (const x of this.#a) x.i = -1;
    this.#a.length = 0;
  }

  #up(i: number): void {
    const a = this.#a;
    const item = a[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = a[parent]!;
      if (p.at <= item.at) break;
      a[i] = p;
      p.i = i;
      i = parent;
    }
    a[i] = item;
    item.i = i;
  }

  #down(i: number): void {
    const a = this.#a;
    const n = a.length;
    const item = a[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && a[r]!.at < a[l]!.at ? r : l;
      const child = a[c]!;
      if (child.at >= item.at) break;
      a[i] = child;
      child.i = i;
      i = c;
    }
    a[i] = item;
    item.i = i;
  }
}
