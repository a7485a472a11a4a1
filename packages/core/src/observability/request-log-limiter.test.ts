import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CapturingLogger, MetricsHarness } from '../../test/helpers.js';
import { MetricNames } from './metrics.js';
import { FAILURE_LINES_PER_SECOND, MAX_LIMITED_TRANSPORTS, RequestLogLimiter, SUPPRESSED_SUMMARY_INTERVAL_MS } from './request-log-limiter.js';

describe('RequestLogLimiter', () => {
  let now = 0;
  let logger: CapturingLogger;
  let harness: MetricsHarness;
  let limiter: RequestLogLimiter;

  beforeEach(() => {
    vi.useFakeTimers();
    now = 1_000;
    logger = new CapturingLogger();
    harness = new MetricsHarness();
    limiter = new RequestLogLimiter({ logger, metrics: harness.metrics, now: () => now });
  });
  afterEach(() => vi.useRealTimers());

  const allowed = (n: number, transport = 'websocket', code = 'INVALID_ARGUMENT'): number => {
    let count = 0;
    for (let i = 0; i < n; i += 1) if (limiter.allow(transport, code)) count += 1;
    return count;
  };

  it('allows 10 lines per second per (transport, code) and counts every other one as suppressed', async () => {
    expect(allowed(1000)).toBe(FAILURE_LINES_PER_SECOND);
    expect(await harness.value(MetricNames.logLinesSuppressed, { reason: 'INVALID_ARGUMENT' })).toBe(1000 - FAILURE_LINES_PER_SECOND);
    // Other codes and other transports have budgets of their own.
    expect(allowed(50, 'websocket', 'UNAUTHENTICATED')).toBe(FAILURE_LINES_PER_SECOND);
    expect(allowed(50, 'grpc', 'INVALID_ARGUMENT')).toBe(FAILURE_LINES_PER_SECOND);
    // Within the same second nothing more; the next second allows 10 again.
    now += 999;
    expect(allowed(5)).toBe(0);
    now += 1;
    expect(allowed(50)).toBe(FAILURE_LINES_PER_SECOND);
  });

  it('writes one summary per 10 s while lines are suppressed, with the number suppressed, and none when nothing was', () => {
    allowed(25);
    expect(logger.find('request failure lines suppressed')).toEqual([]);
    vi.advanceTimersByTime(SUPPRESSED_SUMMARY_INTERVAL_MS - 1);
    expect(logger.find('request failure lines suppressed')).toEqual([]);
    // More suppressed lines before the summary are counted in it, not summed up apart.
    now += 1000;
    allowed(12);
    vi.advanceTimersByTime(1);
    const summaries = logger.find('request failure lines suppressed');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({ level: 'warn', fields: { transport: 'websocket', code: 'INVALID_ARGUMENT', suppressed: 15 + 2, interval_ms: SUPPRESSED_SUMMARY_INTERVAL_MS } });
    // Nothing suppressed since: no further line however long it waits.
    vi.advanceTimersByTime(10 * SUPPRESSED_SUMMARY_INTERVAL_MS);
    expect(logger.find('request failure lines suppressed')).toHaveLength(1);
    // A new flood gets its own summary 10 s after its first suppressed line.
    now += 60_000;
    allowed(11);
    vi.advanceTimersByTime(SUPPRESSED_SUMMARY_INTERVAL_MS);
    expect(logger.find('request failure lines suppressed').map((l) => l.fields['suppressed'])).toEqual([17, 1]);
  });

  it('flush() writes the pending summaries at once (shutdown) and the timer then writes nothing more', () => {
    allowed(13, 'grpc', 'ALREADY_EXISTS');
    limiter.flush();
    expect(logger.find('request failure lines suppressed').map((l) => l.fields)).toEqual([{ transport: 'grpc', code: 'ALREADY_EXISTS', suppressed: 3, interval_ms: SUPPRESSED_SUMMARY_INTERVAL_MS }]);
    vi.advanceTimersByTime(SUPPRESSED_SUMMARY_INTERVAL_MS);
    expect(logger.find('request failure lines suppressed')).toHaveLength(1);
  });

  it('bounds its own memory: transports past the limit share one budget', () => {
    for (let i = 0; i < MAX_LIMITED_TRANSPORTS; i += 1) allowed(1, `t${i}`);
    // Every further name counts against the shared "other" budget.
    let extra = 0;
    for (let i = 0; i < 1000; i += 1) if (limiter.allow(`x${i}`, 'INVALID_ARGUMENT')) extra += 1;
    expect(extra).toBe(FAILURE_LINES_PER_SECOND);
  });
});
