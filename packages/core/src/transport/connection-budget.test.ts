import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StatusCodes } from '@edge-gateway/protocol';
import { CapturingLogger, MetricsHarness } from '../../test/helpers.js';
import { MetricNames } from '../observability/metrics.js';
import { ConnectionBudgets, DEFAULT_CONNECTION_LIMITS, isRefusal, parseFailureLimit, type ConnectionControl } from './connection-budget.js';

describe('parseFailureLimit (GATEWAY_CONNECTION_FAILURE_LIMIT)', () => {
  it('reads <rate>/<s|m|h>[:burst], the burst defaulting to the rate', () => {
    expect(parseFailureLimit('20/s:40')).toEqual({ text: '20/s:40', intervalMs: 50, burst: 40 });
    expect(parseFailureLimit(' 10/m ')).toEqual({ text: '10/m:10', intervalMs: 6000, burst: 10 });
    expect(parseFailureLimit('1/h:3')).toEqual({ text: '1/h:3', intervalMs: 3_600_000, burst: 3 });
    expect(DEFAULT_CONNECTION_LIMITS.failureLimit).toEqual({ text: '20/s:40', intervalMs: 50, burst: 40 });
  });

  it.each(['', '20', '20/s:', '20/d', '0/s', '20/s:0', '-1/s', '1.5/s', 's/20', '20/s:40:1', '20 /s'])('refuses %j', (text) => {
    expect(() => parseFailureLimit(text)).toThrow(RangeError);
  });
});

describe('ConnectionBudget', () => {
  let now = 0;
  let harness: MetricsHarness;
  let logger: CapturingLogger;
  let actions: string[];
  const control: ConnectionControl = {
    pauseReading: () => actions.push('pause'),
    resumeReading: () => actions.push('resume'),
    close: (reason, message) => actions.push(`close ${reason} ${message}`),
  };
  const budgets = (limits: Partial<typeof DEFAULT_CONNECTION_LIMITS> = {}) => new ConnectionBudgets(limits, { transport: 'websocket', metrics: harness.metrics, logger, now: () => now });

  beforeEach(() => {
    vi.useFakeTimers();
    now = 5_000;
    harness = new MetricsHarness();
    logger = new CapturingLogger();
    actions = [];
  });
  afterEach(() => vi.useRealTimers());

  describe('failure budget', () => {
    it('counts only refusals: invalid argument, unauthenticated, revoked, replay', () => {
      expect([...Object.entries(StatusCodes)].filter(([, code]) => isRefusal(code)).map(([name]) => name).sort()).toEqual(['ALREADY_EXISTS', 'FAILED_PRECONDITION', 'INVALID_ARGUMENT', 'UNAUTHENTICATED']);
    });

    it('admits the burst at once; the next refusal closes the connection "too many failed requests", once, counted and logged', async () => {
      const guard = budgets().open(control);
      for (let i = 0; i < 40; i += 1) expect(guard.answered(i % 2 === 0 ? StatusCodes.UNAUTHENTICATED : StatusCodes.INVALID_ARGUMENT)).toBe(true);
      expect(actions).toEqual([]);
      expect(guard.answered(StatusCodes.ALREADY_EXISTS)).toBe(false);
      expect(actions).toEqual(['close failures too many failed requests']);
      expect(guard.closedFor).toBe('failures');
      // Closing: every later answer says so, nothing is closed twice.
      expect(guard.answered(StatusCodes.OK)).toBe(false);
      expect(guard.answered(StatusCodes.UNAUTHENTICATED)).toBe(false);
      expect(actions).toHaveLength(1);
      expect(await harness.value(MetricNames.connectionsClosed, { transport: 'websocket', reason: 'failures' })).toBe(1);
      expect(logger.find('connection closed').map((l) => l.fields)).toEqual([{ transport: 'websocket', reason: 'too many failed requests', refused_requests: 41, failure_limit: '20/s:40' }]);
    });

    it('a client failing at the budget rate is never closed; successes and server-side failures never count', () => {
      const guard = budgets().open(control);
      for (let i = 0; i < 40; i += 1) guard.answered(StatusCodes.UNAUTHENTICATED);
      for (let i = 0; i < 2000; i += 1) {
        now += 50;
        expect(guard.answered(StatusCodes.FAILED_PRECONDITION)).toBe(true);
        for (const code of [StatusCodes.OK, StatusCodes.UNAVAILABLE, StatusCodes.DEADLINE_EXCEEDED, StatusCodes.RESOURCE_EXHAUSTED, StatusCodes.INTERNAL, StatusCodes.UNIMPLEMENTED, StatusCodes.CANCELLED]) {
          expect(guard.answered(code)).toBe(true);
        }
      }
      expect(actions).toEqual([]);
      // Twice the rate is not.
      now += 25;
      guard.answered(StatusCodes.UNAUTHENTICATED);
      now += 25;
      guard.answered(StatusCodes.UNAUTHENTICATED);
      now += 25;
      expect(guard.answered(StatusCodes.UNAUTHENTICATED)).toBe(false);
      expect(actions).toEqual(['close failures too many failed requests']);
    });

    it('each connection has its own budget', () => {
      const set = budgets({ failureLimit: parseFailureLimit('1/m:2') });
      const a = set.open(control);
      const b = set.open(control);
      expect([a.answered(3), a.answered(3), b.answered(3), b.answered(3)]).toEqual([true, true, true, true]);
      expect(a.answered(3)).toBe(false);
      expect(b.closedFor).toBeUndefined();
    });
  });

  describe('backpressure', () => {
    it('pauses reading past the bound, resumes below half; no timer left', () => {
      const guard = budgets({ maxBufferBytes: 1000 }).open(control);
      guard.queued(600);
      guard.queued(400);
      expect(actions).toEqual([]);
      guard.queued(1);
      expect(actions).toEqual(['pause']);
      expect(guard.readingPaused).toBe(true);
      guard.queued(5000);
      guard.written(5000);
      guard.written(500);
      expect(guard.queuedBytes).toBe(501);
      expect(actions).toEqual(['pause']);
      guard.written(2);
      expect(actions).toEqual(['pause', 'resume']);
      expect(guard.readingPaused).toBe(false);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('closes a connection still paused after the drain timeout "not reading", counted and logged with what it held', async () => {
      const guard = budgets({ maxBufferBytes: 1000, drainTimeoutMs: 30_000 }).open(control);
      guard.queued(4000);
      vi.advanceTimersByTime(29_999);
      guard.written(2000);
      expect(actions).toEqual(['pause']);
      vi.advanceTimersByTime(1);
      expect(actions).toEqual(['pause', 'close not_reading not reading']);
      expect(guard.closedFor).toBe('not_reading');
      expect(await harness.value(MetricNames.connectionsClosed, { transport: 'websocket', reason: 'not_reading' })).toBe(1);
      expect(logger.find('connection closed')[0]?.fields).toEqual({ transport: 'websocket', reason: 'not reading', queued_bytes: 2000, drain_timeout_ms: 30_000 });
      // Draining afterwards changes nothing.
      guard.written(2000);
      expect(actions).toHaveLength(2);
    });

    it('a drain in time cancels the close; a later pause gets a full timeout of its own', () => {
      const guard = budgets({ maxBufferBytes: 1000, drainTimeoutMs: 10_000 }).open(control);
      guard.queued(2000);
      vi.advanceTimersByTime(9000);
      guard.written(1600);
      vi.advanceTimersByTime(5000);
      guard.queued(1000);
      vi.advanceTimersByTime(9999);
      expect(actions).toEqual(['pause', 'resume', 'pause']);
      vi.advanceTimersByTime(1);
      expect(actions).toEqual(['pause', 'resume', 'pause', 'close not_reading not reading']);
    });

    it('a connection that went away stops its timer and is never closed again', () => {
      const guard = budgets({ maxBufferBytes: 10 }).open(control);
      guard.queued(100);
      guard.closed();
      expect(vi.getTimerCount()).toBe(0);
      expect(guard.answered(StatusCodes.INVALID_ARGUMENT)).toBe(false);
      expect(actions).toEqual(['pause']);
    });
  });

  it('close lines are failure lines: rate-bounded per transport', () => {
    const set = budgets({ failureLimit: parseFailureLimit('1/h:1') });
    for (let i = 0; i < 50; i += 1) {
      const guard = set.open(control);
      guard.answered(3);
      guard.answered(3);
    }
    expect(actions).toHaveLength(50);
    expect(logger.find('connection closed')).toHaveLength(10);
  });
});
