import { RateLimitedError } from './status-codes.js';

/** Reconnect backoff of a push stream (`subscribe({ autoReconnect: true, backoff })`). */
export interface BackoffOptions {
  /** First delay (default 250 ms). */
  readonly initialMs?: number;
  /** Cap (default 10 s). */
  readonly maxMs?: number;
  /** Growth factor (default 2). */
  readonly multiplier?: number;
  /** Give up after this many consecutive failed attempts (default: never). */
  readonly maxAttempts?: number;
}

/** Default backoff: 250 ms growing by 2 up to 10 s, no attempt limit. */
export const DEFAULT_BACKOFF = { initialMs: 250, maxMs: 10_000, multiplier: 2 } as const;

/** Options of {@link reconnectingStream}. */
export interface ReconnectingStreamOptions<T> {
  /**
   * Opens one push stream resuming after `resumeAfterEventId` (empty: no resume). Its end
   * (return, or a throw) is the end of that attempt.
   */
  readonly open: (resumeAfterEventId: string) => AsyncIterable<T>;
  /** True when a stream that ended with `error` may be reopened (e.g. `UNAVAILABLE`). */
  readonly isRetryable: (error: unknown) => boolean;
  /**
   * The least wait before reopening after `error` (default: a `RateLimitedError`'s
   * `retryAfterMs`): the backoff waits at least this long.
   */
  readonly minDelayOf?: (error: unknown) => number | undefined;
  /** Where the resume point comes from: the session's last verified client event. */
  readonly state: { readonly lastEventId: string };
  /** The resume point of the first stream (default: none). */
  readonly resumeAfterEventId?: string;
  readonly backoff?: BackoffOptions;
  /** Aborting during a wait ends the iteration quietly (`open` handles aborts of a stream). */
  readonly signal?: AbortSignal;
  /** Waits `ms`; resolves false at once when `signal` aborts (default: a timer). For tests. */
  readonly sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<boolean>;
  /** A number in [0, 1) (default `Math.random`). For tests. */
  readonly random?: () => number;
}

/**
 * The reconnect policy of the device SDKs, transport-free: yields the events of `open(...)`;
 * when a stream ends with an error `isRetryable` accepts, waits (exponential backoff, jittered
 * between half and all of the delay) and opens the next one after `state.lastEventId`. The
 * first event of a stream (its bootstrap) resets the delay and the attempt count. Any other
 * error is thrown, as is the last retryable one after `maxAttempts` consecutive failures; a
 * stream that ends normally ends the iteration.
 */
export async function* reconnectingStream<T>(options: ReconnectingStreamOptions<T>): AsyncGenerator<T> {
  const initial = options.backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const max = options.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const multiplier = options.backoff?.multiplier ?? DEFAULT_BACKOFF.multiplier;
  const maxAttempts = options.backoff?.maxAttempts;
  const wait = options.sleep ?? sleep;
  const random = options.random ?? Math.random;
  let delay = initial;
  let failures = 0;
  let resumeAfter = options.resumeAfterEventId ?? '';
  const minDelayOf = options.minDelayOf ?? ((error: unknown) => (error instanceof RateLimitedError ? error.retryAfterMs : undefined));
  for (;;) {
    let bootstrapped = false;
    let minDelay = 0;
    try {
      for await (const event of options.open(resumeAfter)) {
        if (!bootstrapped) {
          bootstrapped = true;
          failures = 0;
          delay = initial;
        }
        yield event;
      }
      return;
    } catch (error) {
      if (!options.isRetryable(error)) throw error;
      failures += 1;
      if (maxAttempts !== undefined && failures > maxAttempts) throw error;
      minDelay = minDelayOf(error) ?? 0;
    }
    resumeAfter = options.state.lastEventId === '' ? resumeAfter : options.state.lastEventId;
    // Jitter keeps a fleet of devices from reconnecting in lockstep after a gateway restart.
    // A rate-limited open says when it would pass: never sooner than that.
    const ms = Math.max(minDelay, Math.round(delay / 2 + random() * (delay / 2)));
    delay = Math.min(max, delay * multiplier);
    if (!(await wait(ms, options.signal))) return;
  }
}

/** Resolves true after `ms`, or false at once if `signal` aborts. */
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
