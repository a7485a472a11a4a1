/**
 * GCRA, the generic cell rate algorithm (the leaky bucket as a virtual scheduling time): a
 * bucket is one number, its theoretical arrival time `tat` (ms). With `T` the emission
 * interval and `tau = (burst - 1) * T`, a request at `now` is admitted when
 * `now >= max(tat, now) - tau`, and then `tat` becomes `max(tat, now) + T`; otherwise it is
 * refused for `max(tat, now) - tau - now` ms. Exactly `burst` requests pass at once, then one per
 * `T`; nothing runs in the background. The Redis script (adapters-redis) is the same arithmetic.
 */

/** The outcome for one bucket: `retryAfterMs` is 0 when it admits. */
export interface GcraStep {
  /** The bucket's new `tat` if the request is admitted. */
  readonly nextTat: number;
  /** 0: admitted; otherwise ms until it would be. */
  readonly retryAfterMs: number;
}

/**
 * One GCRA decision. `tat` undefined: a new (or forgotten) bucket, which is full. A `tat`
 * further ahead than any admission can leave it (`now + tau + T`: the clock went back, or a
 * store moved to a host whose clock is behind) is taken as that bound, so a refusal never
 * asks to wait more than one emission interval.
 */
export function gcra(tat: number | undefined, now: number, intervalMs: number, burst: number): GcraStep {
  const tau = (burst - 1) * intervalMs;
  let start = tat === undefined || tat < now ? now : tat;
  const bound = now + tau + intervalMs;
  if (start > bound) start = bound;
  const allowAt = start - tau;
  if (now < allowAt) return { nextTat: start, retryAfterMs: waitUntil(now, allowAt) };
  return { nextTat: start + intervalMs, retryAfterMs: 0 };
}

/**
 * `allowAt - now`, made exact for the caller: the difference is rounded to the nearest double,
 * and `now + (allowAt - now)` can then fall one ulp short of `allowAt` (e.g. 1/55 s intervals),
 * so a caller that waited exactly the wait it was given would be refused again. Raised by the
 * smallest steps (ulps of `allowAt`) until `now + wait >= allowAt`.
 */
function waitUntil(now: number, allowAt: number): number {
  let wait = allowAt - now;
  for (let step = Math.max(Number.MIN_VALUE, Number.EPSILON * Math.abs(allowAt)); now + wait < allowAt; step *= 2) wait += step;
  return wait;
}
