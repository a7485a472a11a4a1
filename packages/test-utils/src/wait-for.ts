/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this many milliseconds (default 5000). */
  timeoutMs?: number;
  /** Pause between attempts in milliseconds (default 20). */
  intervalMs?: number;
  /** Included in the timeout error. */
  message?: string;
}

/**
 * Calls `fn` until it returns (or resolves to) a truthy value and returns that value.
 * A throwing attempt counts as falsy; its error is reported if the deadline passes.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const intervalMs = options.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const what = options.message ?? 'condition';
      const detail = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`waitFor: ${what} not met within ${timeoutMs}ms${detail}`, {
        cause: lastError,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
