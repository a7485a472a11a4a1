import type { Attributes, Counter } from '@opentelemetry/api';

/**
 * One OpenTelemetry counter with one fixed attribute set, added to without the SDK's work per
 * `add` (it hashes the attributes of every call to find their series): the adds are summed here
 * and handed to the counter in one `add` right before each collection. `GatewayMetrics` does
 * that from an observable callback of its meter, which the SDK runs before it reads the meter's
 * counters, so every collection (a scrape, an export, the flush at shutdown) sees every add made
 * before it. Without an SDK (the API's no-op meter) the sum only grows here, one number.
 */
export class BoundCounter<A extends Attributes = Attributes> {
  private pending = 0;

  constructor(
    private readonly counter: Counter<A>,
    readonly attributes: A,
  ) {}

  add(value = 1): void {
    this.pending += value;
  }

  /** Hands the adds since the last flush to the counter. */
  flush(): void {
    if (this.pending === 0) return;
    const value = this.pending;
    this.pending = 0;
    this.counter.add(value, this.attributes);
  }
}

const boundTo = new WeakMap<object, BoundCounter<never>[]>();

/** A {@link BoundCounter} of `counter`, flushed with the others of it by {@link flushBoundCounters}. */
export function bindCounter<A extends Attributes>(counter: Counter<A>, attributes: A): BoundCounter<A> {
  const list = boundTo.get(counter) ?? [];
  // One per attribute set: a second core on the same metrics shares it (the list stays bounded).
  const same = list.find((bound) => sameAttributes(bound.attributes, attributes));
  if (same !== undefined) return same as unknown as BoundCounter<A>;
  const bound = new BoundCounter(counter, attributes);
  list.push(bound as unknown as BoundCounter<never>);
  boundTo.set(counter, list);
  return bound;
}

/** Hands every {@link bindCounter} sum of `counter` to it (GatewayMetrics, before each collection). */
export function flushBoundCounters(counter: object): void {
  const list = boundTo.get(counter);
  if (list !== undefined) for (const bound of list) bound.flush();
}

function sameAttributes(a: Attributes, b: Attributes): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}
