/**
 * The calls in flight on one connection by call id: a `Map`, created only once a second call
 * is in flight at the same time. A device connection holds one push stream for its whole life;
 * an empty `Map` alone costs it ~200 bytes of heap (issue 25), a field pair nothing more.
 */
export class CallTable<T> {
  private firstId = -1;
  private first: T | undefined;
  private more: Map<number, T> | undefined;

  /** Calls in the table. */
  get size(): number {
    return (this.first === undefined ? 0 : 1) + (this.more?.size ?? 0);
  }

  get(id: number): T | undefined {
    if (this.first !== undefined && this.firstId === id) return this.first;
    return this.more?.get(id);
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds or replaces the call of `id`. */
  set(id: number, call: T): void {
    if (this.first !== undefined && this.firstId === id) {
      this.first = call;
    } else if (this.more?.has(id) === true) {
      this.more.set(id, call);
    } else if (this.first === undefined) {
      this.firstId = id;
      this.first = call;
    } else {
      (this.more ??= new Map()).set(id, call);
    }
  }

  /** True when `id` had a call. */
  delete(id: number): boolean {
    if (this.first !== undefined && this.firstId === id) {
      this.first = undefined;
      this.firstId = -1;
      return true;
    }
    const deleted = this.more?.delete(id) ?? false;
    // Back to at most one call: the map goes (a connection that had a burst of calls does not keep it).
    if (this.more !== undefined && this.more.size === 0) this.more = undefined;
    return deleted;
  }

  /** The calls, as a list (safe to change the table while going through it). */
  values(): T[] {
    const out: T[] = this.first === undefined ? [] : [this.first];
    if (this.more !== undefined) for (const call of this.more.values()) out.push(call);
    return out;
  }

  clear(): void {
    this.first = undefined;
    this.firstId = -1;
    this.more = undefined;
  }
}
