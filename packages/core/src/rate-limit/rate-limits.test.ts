import { describe, expect, it } from 'vitest';
import { CapturingLogger, CountingReplayStore, CountingSigner, FakeDownstream, MetricsHarness, RecordingSink, TestDevice, flipByte } from '../../test/helpers.js';
import { createGatewayCore } from '../composition/gateway-core.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { FakeClock } from '../memory/fake-clock.js';
import { InMemoryRateLimiter } from '../memory/in-memory-rate-limiter.js';
import { InMemoryReplayStore } from '../memory/in-memory-replay-store.js';
import { InMemorySessionStore } from '../memory/in-memory-session-store.js';
import { MetricNames } from '../observability/metrics.js';
import type { RateLimitBucket, RateLimiter, RateLimitSubject, ReservedVerdict } from '../ports/rate-limiter.port.js';
import { StaticRouter } from '../routing/static-router.js';
import { parseRateLimitRules } from './rate-limit-rules.js';
import { RATE_LIMIT_KNOWN_REFUSALS_MAX, RATE_LIMIT_LOG_INTERVAL_MS, RateLimits } from './rate-limits.js';
import type { PipelineDeps } from '../services/pipeline.js';

const phone = new TestDevice('ds-rl-phone', 'u-rl');
const laptop = new TestDevice('ds-rl-laptop', 'u-rl');
const other = new TestDevice('ds-rl-other', 'u-rl-other');

function setup(rules: string, options: { rateLimiter?: RateLimiter | ((clock: FakeClock) => RateLimiter) } = {}) {
  const clock = new FakeClock();
  const rateLimiter = typeof options.rateLimiter === 'function' ? options.rateLimiter(clock) : options.rateLimiter;
  const sessions = new InMemorySessionStore();
  for (const device of [phone, laptop, other]) sessions.set(device.deviceSessionId, device.record('active'));
  const replay = new CountingReplayStore(new InMemoryReplayStore(clock));
  const downstream = new FakeDownstream();
  const logger = new CapturingLogger();
  const harness = new MetricsHarness();
  const core = createGatewayCore(
    {
      sessions,
      replay,
      signer: new CountingSigner(),
      router: new StaticRouter([
        { prefix: 'profile.', downstream },
        { prefix: 'payments.', downstream },
      ]),
      clock,
      logger,
      metrics: harness.metrics,
      ...(rateLimiter === undefined ? {} : { rateLimiter }),
    },
    { rateLimits: parseRateLimitRules(rules), asyncCrypto: false },
  );
  const run = (device: TestDevice, overrides: { messageType?: string; requestId?: string } = {}) =>
    core.execute(device.command({ timestampMs: clock.now(), ...overrides })).then(
      () => 'ok',
      (error: unknown) => (error instanceof GatewayError ? error : Promise.reject(error)),
    );
  const limited = (name: string, labels: Record<string, string>) => harness.value(MetricNames.rateLimited, labels).then((v) => ({ [name]: v }));
  return { clock, core, replay, downstream, logger, harness, run, limited };
}

function expectLimited(outcome: unknown, retryAfterMs: number): void {
  expect(outcome).toBeInstanceOf(GatewayError);
  const error = outcome as GatewayError;
  expect({ code: error.code, message: error.message, retryAfterMs: error.retryAfterMs }).toEqual({
    code: GatewayErrorCode.ResourceExhausted,
    message: 'rate limit exceeded',
    retryAfterMs,
  });
}

describe('rate limits in the pipeline (SPEC §4 step 7)', () => {
  it('admits the burst, refuses the next with the exact retry-after, and the downstream sees only the admitted', async () => {
    const { clock, run, downstream, replay } = setup('session=10/s:3');
    expect([await run(phone), await run(phone), await run(phone)]).toEqual(['ok', 'ok', 'ok']);
    clock.advance(30);
    expectLimited(await run(phone), 70);
    expect(downstream.calls).toHaveLength(3);
    // Limited before the reservation: only the three admitted were reserved.
    expect(replay.calls).toBe(3);
    clock.advance(70);
    expect(await run(phone)).toBe('ok');
  });

  it('a limited request leaves no reservation: the same request_id is admitted after the wait', async () => {
    const { clock, run, downstream } = setup('session=1/s');
    expect(await run(phone)).toBe('ok');
    const refused = await run(phone, { requestId: 'retry-me' });
    expectLimited(refused, 1000);
    clock.advance((refused as GatewayError).retryAfterMs as number);
    expect(await run(phone, { requestId: 'retry-me' })).toBe('ok');
    expect(downstream.calls.map((c) => c.command.requestId).at(-1)).toBe('retry-me');
    // And now it is used.
    clock.advance(1000);
    expect(await run(phone, { requestId: 'retry-me' })).toMatchObject({ code: GatewayErrorCode.AlreadyExists, message: 'request_id was already used' });
  });

  it('an unsigned (or badly signed) request never consumes the budget', async () => {
    const { clock, core, run } = setup('session=1/s');
    for (let i = 0; i < 5; i++) {
      const forged = phone.command({ timestampMs: clock.now() });
      await expect(core.execute({ ...forged, signature: flipByte(forged.signature, 3) })).rejects.toMatchObject({ message: 'invalid request signature' });
    }
    await expect(core.execute(phone.command({ timestampMs: clock.now(), messageType: 'nowhere.x' }))).rejects.toMatchObject({ code: GatewayErrorCode.Unimplemented });
    expect(await run(phone)).toBe('ok');
  });

  it('the user rule spans the devices of one user, not other users', async () => {
    const { run, limited } = setup('session=100/s,user=1/s');
    expect(await run(phone)).toBe('ok');
    expectLimited(await run(laptop), 1000);
    expect(await run(other)).toBe('ok');
    expect(await limited('user', { scope: 'user', route: '*' })).toEqual({ user: 1 });
    expect(await limited('session', { scope: 'session', route: '*' })).toEqual({ session: 0 });
  });

  it('a route rule counts only its prefix; a refusal takes nothing from the other rules (all or nothing)', async () => {
    const { run, clock, limited } = setup('session:payments.=1/s,session=3/s:3');
    expect(await run(phone, { messageType: 'payments.pay' })).toBe('ok');
    expectLimited(await run(phone, { messageType: 'payments.refund' }), 1000);
    // The refused payment did not draw from `session`: two of its three remain.
    expect(await run(phone, { messageType: 'profile.get' })).toBe('ok');
    expect(await run(phone, { messageType: 'profile.get' })).toBe('ok');
    expectLimited(await run(phone, { messageType: 'profile.get' }), 334);
    expect(await limited('payments', { scope: 'session', route: 'payments.' })).toEqual({ payments: 1 });
    expect(await limited('all', { scope: 'session', route: '*' })).toEqual({ all: 1 });
    clock.advance(1000);
    expect(await run(phone, { messageType: 'payments.pay' })).toBe('ok');
  });

  it('where several rules refuse, the first written is counted and the wait covers them all', async () => {
    const { run, limited } = setup('session=2/s:1,user=1/s');
    expect(await run(phone)).toBe('ok');
    expectLimited(await run(phone), 1000);
    expect(await limited('first', { scope: 'session', route: '*' })).toEqual({ first: 1 });
    expect(await limited('second', { scope: 'user', route: '*' })).toEqual({ second: 0 });
  });

  it('session_streams limits stream opens, not commands; a refused open registers nothing', async () => {
    const { clock, core, run, replay } = setup('session_streams=2/m:1');
    const first = new RecordingSink();
    expect(await core.openStream(phone.subscribe({ timestampMs: clock.now() }), first).opened).toBe(true);
    const second = new RecordingSink();
    expect(await core.openStream(phone.subscribe({ timestampMs: clock.now() }), second).opened).toBe(false);
    expectLimited(second.ends[0], 30_000);
    expect(second.events).toHaveLength(0);
    expect(core.hub.size).toBe(1);
    expect(replay.calls).toBe(1);
    expect(await run(phone)).toBe('ok');
    // Another session has its own budget.
    expect(await core.openStream(laptop.subscribe({ timestampMs: clock.now() }), new RecordingSink()).opened).toBe(true);
  });

  it('logs one line per (session, rule) per 10 s, counting the refusals it stands for, and no command line for them', async () => {
    const { clock, run, logger } = setup('session=1/s');
    expect(await run(phone)).toBe('ok');
    for (let i = 0; i < 5; i++) await run(phone);
    clock.advance(RATE_LIMIT_LOG_INTERVAL_MS);
    expect(await run(phone)).toBe('ok');
    await run(phone);
    const lines = logger.find('rate limit exceeded');
    expect(lines.map((l) => l.fields)).toEqual([
      expect.objectContaining({ device_session_id: phone.deviceSessionId, user_id: phone.userId, rule: 'session=1/s:1', scope: 'session', route: '*', retry_after_ms: 1000, refused: 1 }),
      expect.objectContaining({ rule: 'session=1/s:1', refused: 5 }),
    ]);
    expect(logger.find('command').map((l) => l.fields['status'])).toEqual(['ok', 'ok']);
  });

  it('a session known to be limited is refused before its signature is checked, without asking the limiter, until exactly the retry-after', async () => {
    let asked = 0;
    const { clock, core, run } = setup('session=1/s,session:payments.=1/m', {
      rateLimiter: (clock) => {
        const inner = new InMemoryRateLimiter({ clock });
        return {
          acquire: (buckets) => {
            asked += 1;
            return inner.acquire(buckets);
          },
        };
      },
    });
    expect(await run(phone)).toBe('ok');
    expectLimited(await run(phone), 1000);
    expect(asked).toBe(2);
    // A forged request meanwhile: refused as limited (it draws nothing either way): no verify, no limiter call.
    const forged = phone.command({ timestampMs: clock.now() });
    await expect(core.execute({ ...forged, signature: flipByte(forged.signature, 1) })).rejects.toMatchObject({ message: 'rate limit exceeded' });
    clock.advance(999);
    expectLimited(await run(phone), 1);
    expect(asked).toBe(2);
    // Another bucket set (the payments rule applies too) is asked, and answers for itself.
    expectLimited(await run(phone, { messageType: 'payments.pay' }), 1);
    expect(asked).toBe(3);
    clock.advance(1);
    expect(await run(phone)).toBe('ok');
    expect(asked).toBe(4);
    // A forged request of a device that is not limited is judged by its signature.
    const forgedAgain = phone.command({ timestampMs: clock.now() });
    await expect(core.execute({ ...forgedAgain, signature: flipByte(forgedAgain.signature, 1) })).rejects.toMatchObject({ message: 'invalid request signature' });
  });

  it('a refusal known for a user bucket is known to every session of that user, not to other users', async () => {
    let asked = 0;
    const { run } = setup('user=1/s', {
      rateLimiter: (clock) => {
        const inner = new InMemoryRateLimiter({ clock });
        return { acquire: (buckets) => ((asked += 1), inner.acquire(buckets)) };
      },
    });
    expect(await run(phone)).toBe('ok');
    expectLimited(await run(phone), 1000);
    expect(asked).toBe(2);
    // The laptop draws from the same (user) bucket: refused without asking.
    expectLimited(await run(laptop), 1000);
    expect(asked).toBe(2);
    expect(await run(other)).toBe('ok');
    expect(asked).toBe(3);
  });

  it(`remembers at most ${RATE_LIMIT_KNOWN_REFUSALS_MAX} refusals, forgetting the least recent first`, async () => {
    let asked = 0;
    const limits = new RateLimits({
      rules: parseRateLimitRules('session=1/m'),
      limiter: { acquire: () => ((asked += 1), { admitted: false, refusedBy: 0, retryAfterMs: 60_000 }) },
      clock: new FakeClock(),
    });
    const subjectOf = (i: number): RateLimitSubject => ({ deviceSessionId: `ds-${i}`, userId: 'u' });
    const refuse = (i: number) => limits.admit({} as PipelineDeps, limits.commandBuckets(subjectOf(i), 'x.y'), subjectOf(i), `r-${i}`).catch((e: unknown) => e);
    const known = (i: number): boolean => {
      try {
        limits.refuseKnown(limits.commandBuckets(subjectOf(i), 'x.y'), subjectOf(i));
        return false;
      } catch (error) {
        expectLimited(error, 60_000);
        return true;
      }
    };
    for (let i = 0; i < RATE_LIMIT_KNOWN_REFUSALS_MAX; i++) expectLimited(await refuse(i), 60_000);
    expect([known(0), known(RATE_LIMIT_KNOWN_REFUSALS_MAX - 1)]).toEqual([true, true]);
    // Refused again: ds-1 becomes the most recent, ds-2 is now the least recent.
    expectLimited(await refuse(1), 60_000);
    expectLimited(await refuse(RATE_LIMIT_KNOWN_REFUSALS_MAX), 60_000);
    expect([known(0), known(1), known(2), known(3), known(RATE_LIMIT_KNOWN_REFUSALS_MAX)]).toEqual([false, true, true, true, true]);
    expectLimited(await refuse(RATE_LIMIT_KNOWN_REFUSALS_MAX + 1), 60_000);
    expect([known(1), known(2), known(3)]).toEqual([true, false, true]);
    expect(asked).toBe(RATE_LIMIT_KNOWN_REFUSALS_MAX + 3);
  });

  it('no rules: no limiter is consulted, the pipeline is unchanged', async () => {
    const calls: unknown[] = [];
    const spy: RateLimiter = { acquire: (buckets) => (calls.push(buckets), { admitted: true }) };
    const { core, run } = setup('', { rateLimiter: spy });
    expect(core.rateLimits).toBeUndefined();
    for (let i = 0; i < 20; i++) expect(await run(phone)).toBe('ok');
    expect(calls).toHaveLength(0);
  });

  it('a limiter that cannot answer fails the request closed', async () => {
    const broken: RateLimiter = { acquire: () => Promise.reject(new Error('down')) };
    const { run, downstream } = setup('session=5/s', { rateLimiter: broken });
    expect(await run(phone)).toMatchObject({ code: GatewayErrorCode.Unavailable, message: 'rate limit store unavailable' });
    expect(downstream.calls).toHaveLength(0);
  });

  it('a limiter holding the reservations is called once per request instead of acquire + reserve', async () => {
    const seen: Array<{ buckets: readonly RateLimitBucket[]; subject: RateLimitSubject; requestId: string }> = [];
    let answer: ReservedVerdict = { admitted: true, reservation: 'reserved' };
    const combined: RateLimiter = {
      acquire: () => {
        throw new Error('not used');
      },
      acquireAndReserve: async (buckets, subject, requestId) => {
        seen.push({ buckets, subject, requestId });
        return answer;
      },
    };
    const { run, replay, core, clock } = setup('session_streams=1/s', { rateLimiter: combined });
    expect(await run(phone, { requestId: 'c-1' })).toBe('ok');
    // Commands draw from no rule here, yet the reservation goes through the limiter.
    expect(seen).toEqual([{ buckets: [], subject: { deviceSessionId: phone.deviceSessionId, userId: phone.userId }, requestId: 'c-1' }]);
    expect(replay.calls).toBe(0);
    answer = { admitted: false, refusedBy: 0, retryAfterMs: 12.2 };
    const sink = new RecordingSink();
    expect(await core.openStream(phone.subscribe({ timestampMs: clock.now() }), sink).opened).toBe(false);
    expectLimited(sink.ends[0], 13);
    answer = { admitted: true, reservation: 'duplicate' };
    expect(await run(phone)).toMatchObject({ code: GatewayErrorCode.AlreadyExists });
  });
});
