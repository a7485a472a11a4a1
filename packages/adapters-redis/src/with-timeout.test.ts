import { describe, expect, it } from 'vitest';
import { withTimeout } from './redis-client.js';

/** Keeps the event loop busy (a burst of work being decoded, say) for `ms`. */
function stallEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy
  }
}

describe('withTimeout (request-path command bound)', () => {
  it('rejects a command that gets no answer within the bound', async () => {
    const started = performance.now();
    await expect(withTimeout(new Promise<never>(() => undefined), 80)).rejects.toBeInstanceOf(Error);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(75);
    expect(waited).toBeLessThan(1000);
  });

  it('resolves with the answer when it comes in time', async () => {
    let withdrawn = 0;
    await expect(withTimeout(Promise.resolve('PONG'), 80, () => (withdrawn += 1))).resolves.toBe('PONG');
    expect(withdrawn).toBe(0);
  });

  it('withdraws the work once, after rejecting, and ignores a late settlement', async () => {
    let settle!: (value: string) => void;
    const late = new Promise<string>((resolve) => (settle = resolve));
    let withdrawn = 0;
    const bounded = withTimeout(late, 50, () => (withdrawn += 1));
    await expect(bounded).rejects.toBeInstanceOf(Error);
    expect(withdrawn).toBe(1);
    settle('too late');
    await late;
    expect(withdrawn).toBe(1);
  });

  it('does not fail a command whose answer was only delayed by this process stalling its own event loop', async () => {
    // The "reply" is ready 150 ms in, but the loop is busy for 400 ms: both timers are due
    // when the loop comes back, the 100 ms bound first.
    const reply = new Promise<string>((resolve) => setTimeout(() => resolve('OK'), 150));
    const bounded = withTimeout(reply, 100);
    stallEventLoop(400);
    await expect(bounded).resolves.toBe('OK');
  });

  it('still fails after the stall extension when there is no answer at all', async () => {
    const bounded = withTimeout(new Promise<never>(() => undefined), 100);
    const started = performance.now();
    stallEventLoop(300);
    await expect(bounded).rejects.toBeInstanceOf(Error);
    // Extended by at most the bound once: well under bound + stall + bound + slack.
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
