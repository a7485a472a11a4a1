/** Options of {@link rewritePasses}. */
export interface RewritePassesOptions<T> {
  /** What to write, in order. */
  readonly items: readonly T[];
  /** Writes one item: `true` when it was written (the store lacked it), `false` when it was there. Rejects when the store refused. */
  readonly write: (item: T) => Promise<boolean>;
  /** Whether an item must still be written (not forgotten or expired meanwhile): checked right before its write. */
  readonly wanted: (item: T) => boolean;
  /** Writes in flight at most. */
  readonly concurrency: number;
  /** Stops the work between two writes (the owner closed). */
  readonly stopped: () => boolean;
  /** After each pass, with what it wrote and what failed (with the first error). */
  readonly onPass?: (written: readonly T[], failed: readonly T[], error: unknown) => void;
  /**
   * Between passes, while writes failed: resolves `true` to retry the failed items (after a
   * backoff, `attempt` counting from 0), `false` to give up (a newer round replaces this one).
   */
  readonly retryAfter: (attempt: number, failed: readonly T[], error: unknown) => Promise<boolean>;
}

/** What {@link rewritePasses} did. */
export interface RewritePassesResult<T> {
  /** Items written (the store lacked them). */
  readonly written: number;
  /** Items still failing when the work stopped or gave up; empty when everything is done. */
  readonly unfinished: readonly T[];
  /** The last error of a failed write, if any. */
  readonly error: unknown;
}

/**
 * Writes every item again, `concurrency` at a time, in passes: the items whose write failed are
 * retried in the next pass, after `retryAfter`, until none fails, `retryAfter` gives up or the
 * owner stops. Shared by what re-asserts state a failover lost: the revocations of
 * `RevocationReasserter` and the replay reservations of `@edge-gateway/adapters-redis`.
 */
export async function rewritePasses<T>(options: RewritePassesOptions<T>): Promise<RewritePassesResult<T>> {
  let todo = options.items;
  let written = 0;
  let error: unknown;
  let attempt = 0;
  while (todo.length > 0 && !options.stopped()) {
    const failed: T[] = [];
    const writtenNow: T[] = [];
    let passError: unknown;
    let next = 0;
    const current = todo;
    const worker = async (): Promise<void> => {
      while (next < current.length && !options.stopped()) {
        const item = current[next++] as T;
        if (!options.wanted(item)) continue;
        try {
          if (await options.write(item)) writtenNow.push(item);
        } catch (err) {
          passError ??= err;
          failed.push(item);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(Math.max(1, options.concurrency), current.length) }, worker));
    written += writtenNow.length;
    if (failed.length > 0) error = passError;
    options.onPass?.(writtenNow, failed, passError);
    todo = failed;
    if (todo.length === 0 || options.stopped()) break;
    if (!(await options.retryAfter(attempt++, todo, passError))) break;
  }
  return { written, unfinished: todo, error };
}
