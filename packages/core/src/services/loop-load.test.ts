import { describe, expect, it } from 'vitest';
import { LOOP_LOAD_WINDOW_MS, LoopLoad } from './loop-load.js';

/** Keeps the event loop busy (synchronously) for `ms` of wall time. */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

/** Resolves after the event loop has been idle, waiting on a timer, for `ms`. */
function idle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('LoopLoad', () => {
  it('reads a loop that was busy for a whole window as busy, and an idle one as idle', async () => {
    const load = new LoopLoad();
    spin(LOOP_LOAD_WINDOW_MS * 1.5);
    expect(load.utilization()).toBeGreaterThan(0.9);
    // Within the window the last sample stands (no new reading per call).
    expect(load.utilization()).toBeGreaterThan(0.9);
    await idle(LOOP_LOAD_WINDOW_MS * 3);
    expect(load.utilization()).toBeLessThan(0.5);
  });
});
