import type { Logger } from '../ports/logger.port.js';

/**
 * The budget a `close()` of ours uses when given none (e.g. at the end of an `await using`
 * scope): 15 s, the default of `GATEWAY_SHUTDOWN_TIMEOUT` (SPEC §7, §8.2).
 */
export const DEFAULT_CLOSE_BUDGET_MS = 15_000;

/** One step of a shutdown sequence, stopped within its own budget. */
export interface ShutdownStep {
  /** Name logged with `component stopped`. */
  readonly component: string;
  stop(budgetMs: number): Promise<unknown> | unknown;
}

/** Resolves `work` or rejects after `budgetMs`; the timer never keeps the process alive. */
export async function withBudget<T>(work: Promise<T>, budgetMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${budgetMs}ms`)), budgetMs);
    (timer as { unref?: () => void }).unref?.();
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the steps in order, each with its own budget, logging `component stopped` with the
 * component name and duration. A step that fails or overruns is logged and the sequence goes
 * on. Returns true when every step stopped cleanly.
 */
export async function runShutdown(steps: readonly ShutdownStep[], budgetMs: number, logger: Logger): Promise<boolean> {
  let clean = true;
  for (const step of steps) {
    const started = performance.now();
    try {
      await withBudget(Promise.resolve().then(() => step.stop(budgetMs)), budgetMs, step.component);
      logger.info('component stopped', { component: step.component, duration_ms: elapsed(started) });
    } catch (error) {
      clean = false;
      logger.warn('component stop failed', {
        component: step.component,
        duration_ms: elapsed(started),
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return clean;
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
