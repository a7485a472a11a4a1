/** Reconnect backoff bounds in milliseconds. */
export interface ReconnectOptions {
  /** First delay (default 100). */
  minDelayMs?: number;
  /** Cap of the exponential growth (default 5000). */
  maxDelayMs?: number;
}

/**
 * Capped exponential backoff with jitter: attempt 0 waits about `minDelayMs`, each further
 * attempt doubles it up to `maxDelayMs`; the result is drawn from [50%, 100%] of that value
 * so that many gateway processes do not reconnect in lockstep.
 */
export function backoffDelay(attempt: number, options: ReconnectOptions = {}): number {
  const min = Math.max(1, options.minDelayMs ?? 100);
  const max = Math.max(min, options.maxDelayMs ?? 5000);
  const capped = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + Math.random() * (capped / 2));
}
