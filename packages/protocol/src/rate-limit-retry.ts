import { RateLimitedError } from './status-codes.js';

/** Options of {@link withRateLimitRetries}. */
export interface RateLimitRetryOptions {
  /** Retries after a {@link RateLimitedError} (0: none, the error is thrown). */
  readonly retries: number;
  /** Epoch ms (local clock): no retry whose wait would end after it; the error is thrown instead. */
  readonly deadlineMs?: number;
  /** Aborting during a wait throws `onAbort()`'s error at once. */
  readonly signal?: AbortSignal;
  /** The error thrown when `signal` aborts during a wait. */
  readonly onAbort: () => Error;
  /** The local clock the deadline is on, epoch ms (default `Date.now`). For tests. */
  readonly clock?: () => number;
  /** Waits `ms`; resolves false at once when `signal` aborts (default: a timer). For tests. */
  readonly sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<boolean>;
}

/**
 * Runs `attempt`; when it throws a {@link RateLimitedError} and retries are left, waits the
 * error's `retryAfterMs` (exactly: the gateway computed when the request passes) and runs it
 * again. The device SDKs send the same `request_id` again: a refused request left no
 * reservation. Any other error, or the last refusal, is thrown.
 */
export async function withRateLimitRetries<T>(attempt: () => Promise<T>, options: RateLimitRetryOptions): Promise<T> {
  const wait = options.sleep ?? sleep;
  const clock = options.clock ?? Date.now;
  for (let retry = 0; ; retry++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof RateLimitedError) || retry >= options.retries) throw error;
      if (options.deadlineMs !== undefined && clock() + error.retryAfterMs >= options.deadlineMs) throw error;
      if (!(await wait(error.retryAfterMs, options.signal))) throw options.onAbort();
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
