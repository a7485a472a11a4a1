/** How long one event-loop utilization sample spans. */
export const LOOP_LOAD_WINDOW_MS = 100;

/**
 * The event loop's utilization (busy share, 0–1) over the last completed window of at least
 * {@link LOOP_LOAD_WINDOW_MS}, sampled lazily by the caller: no timer, one
 * `eventLoopUtilization()` call per window, a clock read otherwise. After a quiet spell the
 * window stretches over it, so a lone call reads as idle.
 */
export class LoopLoad {
  private last = performance.eventLoopUtilization();
  private sampledAt = performance.now();
  private value = 0;

  utilization(): number {
    const now = performance.now();
    if (now - this.sampledAt >= LOOP_LOAD_WINDOW_MS) {
      const current = performance.eventLoopUtilization();
      this.value = performance.eventLoopUtilization(current, this.last).utilization;
      this.last = current;
      this.sampledAt = now;
    }
    return this.value;
  }
}

let shared: LoopLoad | undefined;
/** The process's one sampler (every service reads the same event loop). */
export function processLoopLoad(): LoopLoad {
  shared ??= new LoopLoad();
  return shared;
}
