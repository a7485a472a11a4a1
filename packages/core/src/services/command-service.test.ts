import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import {
  CapturingLogger,
  ControlledReplayStore,
  CountingReplayStore,
  FakeDownstream,
  MetricsHarness,
  ModeRecordingSigner,
  TestDevice,
  flipByte,
  vectorSigner,
  vectors,
} from '../../test/helpers.js';
import type { CommandRequest } from '../domain.js';
import { GatewayError } from '../errors.js';
import { SessionEventsHandler } from '../handlers/session-events-handler.js';
import { MetricNames } from '../observability/metrics.js';
import { FAILURE_LINES_PER_SECOND, RequestLogLimiter } from '../observability/request-log-limiter.js';
import type { ReplayStore } from '../ports/replay-store.port.js';
import type { ResponseSigner } from '../ports/response-signer.port.js';
import { PushHub } from '../push/push-hub.js';
import { StaticRouter } from '../routing/static-router.js';
import { SessionCache } from '../session/session-cache.js';
import { commandResultBytes } from '../signing/canonical.js';
import { ed25519PublicKeyFromRaw } from '../signing/keys.js';
import { verifyEd25519 } from '../signing/verifier.js';
import { FakeClock } from '../memory/fake-clock.js';
import { CancellationSource } from '../ports/cancellation.port.js';
import { InMemoryReplayStore } from '../memory/in-memory-replay-store.js';
import { InMemorySessionStore } from '../memory/in-memory-session-store.js';
import { CommandService, DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT, DEFAULT_ASYNC_CRYPTO_MIN_LOOP_UTILIZATION, DEFAULT_DOWNSTREAM_TIMEOUT_MS, DEFAULT_FRESHNESS_WINDOW_MS, type CallContext } from './command-service.js';

const WINDOW = 60_000;
const ID_REASON = 'must be 1-128 characters of [A-Za-z0-9._:-]';
const SECRET = 'TOP-SECRET-PAYLOAD-7f3a';

const alice = new TestDevice('ds-alice', 'u-alice');
const revoked = new TestDevice('ds-revoked', 'u-rev');
const stranger = new TestDevice('ds-unknown', 'u-nobody');

function setup(
  options: {
    replay?: ReplayStore;
    downstreamTimeoutMs?: number;
    maxPayloadBytes?: number;
    signer?: ResponseSigner;
    asyncCrypto?: boolean;
    asyncCryptoMinInFlight?: number;
    loopUtilization?: () => number;
    /** Builds the failure-line limiter (default: the service's own). */
    requestLog?: (logger: CapturingLogger, harness: MetricsHarness) => RequestLogLimiter;
  } = {},
) {
  const clock = new FakeClock();
  const store = new InMemorySessionStore();
  store.set(alice.deviceSessionId, alice.record('active'));
  store.set(revoked.deviceSessionId, revoked.record('revoked'));
  const memoryReplay = new InMemoryReplayStore(clock);
  const replay = new CountingReplayStore(options.replay ?? memoryReplay);
  const harness = new MetricsHarness();
  const logger = new CapturingLogger();
  const cache = new SessionCache(store, { maxEntries: 100, ttlMs: 30_000, clock, logger });
  const downstream = new FakeDownstream('profile-svc:9000', () => ({
    resultCode: 'ok',
    payload: new Uint8Array(Buffer.from(`{"echo":"${SECRET}-result"}`)),
  }));
  const router = new StaticRouter([{ prefix: 'profile.', downstream }]);
  const signer = options.signer ?? vectorSigner();
  const service = new CommandService({
    sessions: cache,
    replay,
    router,
    signer,
    clock,
    logger,
    metrics: harness.metrics,
    ...(options.requestLog === undefined ? {} : { requestLog: options.requestLog(logger, harness) }),
    freshnessWindowMs: WINDOW,
    ...(options.downstreamTimeoutMs === undefined ? {} : { downstreamTimeoutMs: options.downstreamTimeoutMs }),
    ...(options.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: options.maxPayloadBytes }),
    // The hand-off tests below run with it on unless they say otherwise (the default is off).
    asyncCrypto: options.asyncCrypto ?? true,
    ...(options.asyncCryptoMinInFlight === undefined ? {} : { asyncCryptoMinInFlight: options.asyncCryptoMinInFlight }),
    // A saturated event loop unless a test says otherwise (the hand-off tests below).
    loopUtilization: options.loopUtilization ?? (() => 1),
  });
  const hub = new PushHub({ bufferSize: 8 });
  const sessionEvents = new SessionEventsHandler({ cache, hub });
  /** A request signed by `device` at the current clock time. */
  const request = (device: TestDevice, overrides: Partial<CommandRequest> = {}) =>
    device.command({ timestampMs: clock.now(), payload: new Uint8Array(Buffer.from(SECRET)), ...overrides });
  return { clock, store, memoryReplay, replay, harness, logger, cache, downstream, router, signer, service, sessionEvents, request };
}

async function failure(promise: Promise<unknown>): Promise<GatewayError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GatewayError);
  return error as GatewayError;
}

async function expectFailure(promise: Promise<unknown>, code: string, message: string): Promise<GatewayError> {
  const error = await failure(promise);
  expect({ code: error.code, message: error.message }).toEqual({ code, message });
  return error;
}

describe('CommandService', () => {
  describe('success', () => {
    it('runs the downstream and returns a result signed over commandResultBytes with the clock time', async () => {
      const { service, request, downstream, clock, signer } = setup();
      const req = request(alice, { messageType: 'profile.get', requestId: 'req-0001' });
      clock.advance(1234); // the result time is the gateway clock at signing, not the request time
      const result = await service.execute(req);
      expect(downstream.calls).toHaveLength(1);
      expect(downstream.calls[0]?.command).toEqual({
        messageType: 'profile.get',
        userId: 'u-alice',
        deviceSessionId: 'ds-alice',
        requestId: 'req-0001',
        payload: req.payload,
      });
      expect(result.requestId).toBe('req-0001');
      expect(result.resultCode).toBe('ok');
      expect(Buffer.from(result.payload).toString()).toBe(`{"echo":"${SECRET}-result"}`);
      expect(result.timestampMs).toBe(clock.now());
      expect(result.signerKeyId).toBe(vectors.keys.gateway.key_id);
      expect(result.signature).toHaveLength(64);
      const publicKey = ed25519PublicKeyFromRaw(signer.publicKey);
      expect(verifyEd25519(publicKey, commandResultBytes(result), result.signature)).toBe(true);
      expect(verifyEd25519(publicKey, commandResultBytes({ ...result, resultCode: 'error' }), result.signature)).toBe(false);
    });

    it('uses the defaults of SPEC §7 when not configured', () => {
      expect(DEFAULT_FRESHNESS_WINDOW_MS).toBe(300_000);
      expect(DEFAULT_DOWNSTREAM_TIMEOUT_MS).toBe(10_000);
    });
  });

  describe('§4 rows, each with its exact status and message', () => {
    it('1: field rules → INVALID_ARGUMENT naming the field', async () => {
      const { service, request, store } = setup({ maxPayloadBytes: 64 });
      await expectFailure(service.execute(request(alice, { requestId: 'bad id' })), 'invalid_argument', `request_id: ${ID_REASON}`);
      await expectFailure(service.execute(request(alice, { deviceSessionId: 'x'.repeat(129) })), 'invalid_argument', `device_session_id: ${ID_REASON}`);
      await expectFailure(
        service.execute(request(alice, { messageType: 'Profile.get' })),
        'invalid_argument',
        'message_type: must be 1-128 characters of [a-z0-9._-] starting with a letter',
      );
      await expectFailure(service.execute(request(alice, { payload: new Uint8Array(65) })), 'invalid_argument', 'payload: must be at most 64 bytes');
      await expectFailure(service.execute(request(alice, { signature: new Uint8Array(63) })), 'invalid_argument', 'signature: must be exactly 64 bytes');
      expect(store.reads).toBe(0);
      await expect(service.execute(request(alice, { payload: new Uint8Array(64) }))).resolves.toMatchObject({ resultCode: 'ok' });
    });

    it('2: freshness window boundaries (past and future) → UNAUTHENTICATED', async () => {
      const { service, request, clock } = setup();
      const now = clock.now();
      await expect(service.execute(request(alice, { timestampMs: now - WINDOW }))).resolves.toBeDefined();
      await expect(service.execute(request(alice, { timestampMs: now + WINDOW }))).resolves.toBeDefined();
      const stale = 'request timestamp is outside the freshness window';
      await expectFailure(service.execute(request(alice, { timestampMs: now - WINDOW - 1 })), 'unauthenticated', stale);
      await expectFailure(service.execute(request(alice, { timestampMs: now + WINDOW + 1 })), 'unauthenticated', stale);
      await expectFailure(service.execute(request(alice, { timestampMs: 0 })), 'unauthenticated', stale);
    });

    it('3: unknown session → UNAUTHENTICATED', async () => {
      const { service, request } = setup();
      await expectFailure(service.execute(request(stranger)), 'unauthenticated', 'unknown device session');
    });

    it('3: a malformed record counts as unknown', async () => {
      const { service, request, store } = setup();
      store.set(alice.deviceSessionId, { ...alice.record(), client_public_key: 'AAAA' });
      await expectFailure(service.execute(request(alice)), 'unauthenticated', 'unknown device session');
    });

    it('4: revoked session → FAILED_PRECONDITION', async () => {
      const { service, request, downstream } = setup();
      await expectFailure(service.execute(request(revoked)), 'failed_precondition', 'device session is revoked');
      expect(downstream.calls).toHaveLength(0);
    });

    it('5: bad signature → UNAUTHENTICATED (flipped byte, other key, tampered field)', async () => {
      const { service, request } = setup();
      const good = request(alice);
      const msg = 'invalid request signature';
      await expectFailure(service.execute({ ...good, signature: flipByte(good.signature, 10) }), 'unauthenticated', msg);
      await expectFailure(service.execute(request(alice, { signature: request(stranger).signature })), 'unauthenticated', msg);
      await expectFailure(service.execute({ ...good, payload: new Uint8Array(Buffer.from('other payload')) }), 'unauthenticated', msg);
      await expectFailure(service.execute({ ...good, timestampMs: good.timestampMs - 1 }), 'unauthenticated', msg);
      // A key swap: stranger signs as alice.
      const forged = new TestDevice(alice.deviceSessionId, alice.userId).command({ timestampMs: good.timestampMs });
      await expectFailure(service.execute(forged), 'unauthenticated', msg);
    });

    it('6: no route → UNIMPLEMENTED naming the message type', async () => {
      const { service, request } = setup();
      await expectFailure(service.execute(request(alice, { messageType: 'chat.send' })), 'unimplemented', 'no route for message type chat.send');
    });

    it('7: replay → ALREADY_EXISTS, counted, downstream runs once', async () => {
      const { service, request, downstream, harness } = setup();
      const req = request(alice);
      await service.execute(req);
      await expectFailure(service.execute(req), 'already_exists', 'request_id was already used');
      await expectFailure(service.execute(req), 'already_exists', 'request_id was already used');
      expect(downstream.calls).toHaveLength(1);
      expect(await harness.value(MetricNames.replayRejections)).toBe(2);
    });

    it('7: the reservation lasts 2 × the freshness window and is scoped to the session', async () => {
      const { service, request, replay, memoryReplay, clock } = setup();
      const req = request(alice, { requestId: 'same-id' });
      await service.execute(req);
      expect(replay.calls).toBe(1);
      await expect(memoryReplay.reserve('ds-other', 'same-id', 1000)).resolves.toBe('reserved');
      clock.advance(2 * WINDOW - 1);
      await expect(memoryReplay.reserve('ds-alice', 'same-id', 1000)).resolves.toBe('duplicate');
      clock.advance(1);
      await expect(memoryReplay.reserve('ds-alice', 'same-id', 1000)).resolves.toBe('reserved');
    });

    it('session store unreachable → UNAVAILABLE "session store unavailable"', async () => {
      const { service, request, store, downstream } = setup();
      store.failing = true;
      const error = await expectFailure(service.execute(request(alice)), 'unavailable', 'session store unavailable');
      expect(error.cause).toBeInstanceOf(Error);
      expect(downstream.calls).toHaveLength(0);
    });

    it('replay store unreachable → UNAVAILABLE "replay store unavailable" and the command never runs (fail closed)', async () => {
      const { service, request, memoryReplay, downstream } = setup();
      memoryReplay.failing = true;
      await expectFailure(service.execute(request(alice)), 'unavailable', 'replay store unavailable');
      expect(downstream.calls).toHaveLength(0);
    });

    it('7: reservation not replicated → UNAVAILABLE "replay store not durable", the command never runs, the same request id runs once replication is back; every outcome counted', async () => {
      const { service, request, memoryReplay, downstream, harness, logger } = setup();
      const reservations = (outcome: string) => harness.value(MetricNames.replayReservations, { outcome });
      const done = request(alice);
      await service.execute(done);
      memoryReplay.unreplicated = true;
      const req = request(alice);
      await expectFailure(service.execute(req), 'unavailable', 'replay store not durable');
      await expectFailure(service.execute(req), 'unavailable', 'replay store not durable');
      expect(downstream.calls).toHaveLength(1);
      expect(logger.find('command').at(-1)?.fields).toMatchObject({ status: 'unavailable', reason: 'replay store not durable', request_id: req.requestId });
      // A replay is answered at once, durable or not.
      await expectFailure(service.execute(done), 'already_exists', 'request_id was already used');
      memoryReplay.failing = true;
      await expectFailure(service.execute(request(alice)), 'unavailable', 'replay store unavailable');
      memoryReplay.failing = false;
      memoryReplay.unreplicated = false;
      await expect(service.execute(req)).resolves.toMatchObject({ requestId: req.requestId, resultCode: 'ok' });
      await expectFailure(service.execute(req), 'already_exists', 'request_id was already used');
      expect(downstream.calls.map((c) => c.command.requestId)).toEqual([done.requestId, req.requestId]);
      expect({ ok: await reservations('ok'), replay: await reservations('replay'), notReplicated: await reservations('not_replicated'), unavailable: await reservations('unavailable') }).toEqual({
        ok: 2,
        replay: 2,
        notReplicated: 2,
        unavailable: 1,
      });
      expect(await harness.value(MetricNames.replayRejections)).toBe(2);
    });

    describe('8: downstream failures', () => {
      it.each([
        ['unavailable', new GatewayError('unavailable', 'profile service is down')],
        ['deadline_exceeded', new GatewayError('deadline_exceeded', 'deadline exceeded after 10s')],
      ] as const)('%s passes through with its message', async (code, thrown) => {
        const { service, request, downstream } = setup();
        downstream.behaviour = () => Promise.reject(thrown);
        await expectFailure(service.execute(request(alice)), code, thrown.message);
      });

      it('cut by the client\'s own deadline: DEADLINE_EXCEEDED "deadline exceeded", never the downstream library\'s diagnostics', async () => {
        const { service, request, downstream, clock } = setup();
        downstream.behaviour = () => {
          clock.advance(150);
          // What grpc-js's client says when its own timer for the propagated deadline fires first.
          return Promise.reject(new GatewayError('deadline_exceeded', 'Deadline exceeded after 0.101s,LB pick: 0.001s,remote_addr=10.0.0.5:9000'));
        };
        await expectFailure(service.execute(request(alice), { deadlineMs: clock.now() + 100 }), 'deadline_exceeded', 'deadline exceeded');
      });

      it.each([
        ['1 ms before the deadline (the transport timer ran on a loop clock a turn behind)', 99, 'deadline_exceeded', 'deadline exceeded'],
        ['at the deadline', 100, 'deadline_exceeded', 'deadline exceeded'],
        ['well before the deadline (the client gave up)', 40, 'internal', 'downstream command failed'],
      ] as const)('cut by the transport %s: %s', async (_label, cutAt, code, message) => {
        const { service, request, downstream, clock } = setup();
        const cancellation = new CancellationSource();
        const deadlineMs = clock.now() + 100;
        downstream.behaviour = () => {
          clock.advance(cutAt);
          cancellation.cancel();
          // What the aborted downstream call rejects with (grpc-js: CANCELLED).
          return Promise.reject(new Error('1 CANCELLED: Cancelled on client'));
        };
        await expectFailure(service.execute(request(alice), { deadlineMs, cancellation }), code, message);
      });

      it.each([
        ['a plain Error', new Error('connection reset: secret internals')],
        ['another GatewayError code', GatewayError.invalidArgument('downstream did not like it')],
        ['a non-Error value', 'boom'],
      ])('%s becomes INTERNAL "downstream command failed", details only in the log', async (_label, thrown) => {
        const { service, request, downstream, logger } = setup();
        downstream.behaviour = () => Promise.reject(thrown);
        const error = await expectFailure(service.execute(request(alice)), 'internal', 'downstream command failed');
        expect(error.cause).toBe(thrown);
        const line = logger.find('downstream command failed')[0];
        expect(line?.level).toBe('warn');
        expect(line?.fields).toMatchObject({ target: 'profile-svc:9000', message_type: 'profile.get' });
        expect(String(line?.fields['error'])).toContain(thrown instanceof Error ? thrown.message : thrown);
      });

      it('a downstream that throws synchronously is INTERNAL too', async () => {
        const { service, request, downstream } = setup();
        downstream.behaviour = () => {
          throw new TypeError('bug');
        };
        await expectFailure(service.execute(request(alice)), 'internal', 'downstream command failed');
      });
    });
  });

  describe('check order (first failure wins)', () => {
    it('an invalid field with a stale timestamp fails INVALID_ARGUMENT', async () => {
      const { service, request, clock } = setup();
      await expectFailure(service.execute(request(alice, { requestId: '', timestampMs: clock.now() - 10 * WINDOW })), 'invalid_argument', `request_id: ${ID_REASON}`);
    });

    it('a stale request for an unknown session fails as stale, without a store read', async () => {
      const { service, request, clock, store } = setup();
      await expectFailure(service.execute(request(stranger, { timestampMs: clock.now() - WINDOW - 1 })), 'unauthenticated', 'request timestamp is outside the freshness window');
      expect(store.reads).toBe(0);
    });

    it('a stale request while the session store is down fails as stale', async () => {
      const { service, request, clock, store } = setup();
      store.failing = true;
      await expectFailure(service.execute(request(alice, { timestampMs: clock.now() + WINDOW + 1 })), 'unauthenticated', 'request timestamp is outside the freshness window');
    });

    it('unknown session with a bad signature → unknown', async () => {
      const { service, request } = setup();
      const req = request(stranger);
      await expectFailure(service.execute({ ...req, signature: flipByte(req.signature) }), 'unauthenticated', 'unknown device session');
    });

    it('revoked session with a bad signature → revoked', async () => {
      const { service, request } = setup();
      const req = request(revoked);
      await expectFailure(service.execute({ ...req, signature: flipByte(req.signature) }), 'failed_precondition', 'device session is revoked');
    });

    it('bad signature with no route → invalid signature', async () => {
      const { service, request } = setup();
      const req = request(alice, { messageType: 'chat.send' });
      await expectFailure(service.execute({ ...req, signature: flipByte(req.signature) }), 'unauthenticated', 'invalid request signature');
    });

    it('no route is checked before replay: an unrouted request does not consume its request_id', async () => {
      const { service, request, replay, memoryReplay } = setup();
      const req = request(alice, { messageType: 'chat.send', requestId: 'unrouted-1' });
      await expectFailure(service.execute(req), 'unimplemented', 'no route for message type chat.send');
      await expectFailure(service.execute(req), 'unimplemented', 'no route for message type chat.send');
      expect(replay.calls).toBe(0);
      await expect(memoryReplay.reserve('ds-alice', 'unrouted-1', 1000)).resolves.toBe('reserved');
    });

    it('a failed signature does not consume the request_id either', async () => {
      const { service, request } = setup();
      const req = request(alice, { requestId: 'sig-1' });
      await expectFailure(service.execute({ ...req, signature: flipByte(req.signature) }), 'unauthenticated', 'invalid request signature');
      await expect(service.execute(req)).resolves.toMatchObject({ requestId: 'sig-1' });
    });

    it('replay is checked before the downstream, and a replay with the replay store down is UNAVAILABLE', async () => {
      const { service, request, memoryReplay } = setup();
      const req = request(alice);
      await service.execute(req);
      memoryReplay.failing = true;
      await expectFailure(service.execute(req), 'unavailable', 'replay store unavailable');
    });
  });

  describe('deadline propagation', () => {
    it('passes the client deadline and abort signal to the downstream', async () => {
      const { service, request, downstream, clock } = setup();
      const controller = new AbortController();
      const context: CallContext = { deadlineMs: clock.now() + 777, signal: controller.signal };
      await service.execute(request(alice), context);
      expect(downstream.calls[0]?.context.deadlineMs).toBe(clock.now() + 777);
      expect(downstream.calls[0]?.context.signal).toBe(controller.signal);
    });

    it('hands a transport Cancellation on, with an AbortSignal made from it only when the downstream reads one', async () => {
      const { service, request, downstream } = setup();
      const cancellation = new CancellationSource();
      let signal: AbortSignal | undefined;
      downstream.behaviour = (_command, context) => {
        expect(context.cancellation).toBe(cancellation);
        signal = context.signal;
        expect(context.signal).toBe(signal);
        return { resultCode: 'ok', payload: new Uint8Array(0) };
      };
      await service.execute(request(alice), { cancellation });
      expect(signal?.aborted).toBe(false);
      cancellation.cancel();
      expect(signal?.aborted).toBe(true);
    });

    it('without a client deadline uses now + downstreamTimeoutMs', async () => {
      const { service, request, downstream, clock } = setup({ downstreamTimeoutMs: 2500 });
      await service.execute(request(alice));
      expect(downstream.calls[0]?.context).toEqual({ deadlineMs: clock.now() + 2500 });
    });

    it('defaults to 10 s without configuration', async () => {
      const { service, request, downstream, clock } = setup();
      await service.execute(request(alice));
      expect(downstream.calls[0]?.context.deadlineMs).toBe(clock.now() + 10_000);
    });
  });

  describe('an expired deadline (issue 12)', () => {
    it('already passed: DEADLINE_EXCEEDED, no reservation, no downstream call, logged as deadline_exceeded', async () => {
      const { service, request, downstream, replay, clock, logger } = setup();
      const req = request(alice);
      await expectFailure(service.execute(req, { deadlineMs: clock.now() }), 'deadline_exceeded', 'deadline exceeded');
      expect(replay.calls).toBe(0);
      expect(downstream.calls).toHaveLength(0);
      expect(logger.find('command')[0]?.fields).toMatchObject({ status: 'deadline_exceeded', request_id: req.requestId });
      expect(logger.find('downstream command failed')).toEqual([]);
      // The request_id is still free: the same request runs once the caller retries in time.
      await expect(service.execute(req, { deadlineMs: clock.now() + 1000 })).resolves.toMatchObject({ resultCode: 'ok' });
    });

    it('already passed when the checks start: no session lookup, no signature check (work nobody waits for is dropped first)', async () => {
      const { service, request, replay, clock } = setup();
      // Neither the unknown session nor the broken signature is looked at: an overloaded
      // gateway that reaches a call after its deadline spends nothing more on it.
      await expectFailure(service.execute(request(stranger), { deadlineMs: clock.now() - 1 }), 'deadline_exceeded', 'deadline exceeded');
      const forged = { ...request(alice), signature: flipByte(request(alice).signature) };
      await expectFailure(service.execute(forged, { deadlineMs: clock.now() - 1 }), 'deadline_exceeded', 'deadline exceeded');
      expect(replay.calls).toBe(0);
      // Field rules and freshness still come first (step 1 and 2 cost nothing).
      await expectFailure(service.execute({ ...request(alice), requestId: '' }, { deadlineMs: clock.now() - 1 }), 'invalid_argument', `request_id: ${ID_REASON}`);
    });

    it('passing during the reservation: the reservation is released and the call ends DEADLINE_EXCEEDED before the downstream', async () => {
      const controlled = new ControlledReplayStore();
      const { service, request, downstream, clock, replay } = setup({ replay: controlled });
      const req = request(alice);
      const call = service.execute(req, { deadlineMs: clock.now() + 50 });
      await controlled.reached(1);
      clock.advance(50);
      controlled.calls[0]?.outcome.resolve('reserved');
      await expectFailure(call, 'deadline_exceeded', 'deadline exceeded');
      expect(downstream.calls).toHaveLength(0);
      expect(replay.releases).toBe(1);
    });

    it('cutting the downstream call: DEADLINE_EXCEEDED, not "downstream command failed"', async () => {
      const { service, request, downstream, clock, logger } = setup();
      downstream.behaviour = () => {
        clock.advance(100);
        throw new Error('downstream call aborted before it started');
      };
      await expectFailure(service.execute(request(alice), { deadlineMs: clock.now() + 100 }), 'deadline_exceeded', 'deadline exceeded');
      expect(logger.find('downstream command failed')).toEqual([]);
      expect(logger.find('command')[0]?.fields).toMatchObject({ status: 'deadline_exceeded' });
    });

    it('cutting the downstream call keeps the reservation: the same request again is ALREADY_EXISTS and the downstream is not called again (it may have run)', async () => {
      const { service, request, downstream, clock, replay } = setup();
      const req = request(alice);
      downstream.behaviour = () => {
        clock.advance(100);
        throw new Error('cancelled at the deadline');
      };
      await expectFailure(service.execute(req, { deadlineMs: clock.now() + 100 }), 'deadline_exceeded', 'deadline exceeded');
      expect(replay.releases).toBe(0);
      await expectFailure(service.execute(req, { deadlineMs: clock.now() + 1000 }), 'already_exists', 'request_id was already used');
      expect(downstream.calls).toHaveLength(1);
    });
  });

  describe('log bounds (issue 12)', () => {
    it.each(['device_session_id', 'request_id', 'message_type'] as const)('an invalid 1 MB %s is logged as its first 64 characters plus its length', async (field) => {
      const { service, request, logger } = setup();
      const huge = `${'x'.repeat(64)}${'y'.repeat(1024 * 1024 - 64)}`;
      const key = field === 'device_session_id' ? 'deviceSessionId' : field === 'request_id' ? 'requestId' : 'messageType';
      await expectFailure(service.execute({ ...request(alice), [key]: huge }), 'invalid_argument', `${field}: ${field === 'message_type' ? 'must be 1-128 characters of [a-z0-9._-] starting with a letter' : ID_REASON}`);
      const line = logger.find('command')[0];
      expect(line?.fields[field]).toBe('x'.repeat(64));
      expect(line?.fields[`${field}_length`]).toBe(huge.length);
      expect(JSON.stringify(line).length).toBeLessThan(1024);
    });

    it('valid values are logged whole, without a length field', async () => {
      const { service, request, logger } = setup();
      const req = request(alice, { requestId: 'r'.repeat(128) });
      await service.execute(req);
      expect(logger.find('command')[0]?.fields).toMatchObject({ request_id: 'r'.repeat(128), device_session_id: alice.deviceSessionId });
      expect(logger.find('command')[0]?.fields).not.toHaveProperty('request_id_length');
    });

    it('a huge downstream message is cut in the log line', async () => {
      const { service, request, downstream, logger } = setup();
      downstream.behaviour = () => {
        throw new Error('z'.repeat(100_000));
      };
      await expectFailure(service.execute(request(alice)), 'internal', 'downstream command failed');
      for (const line of logger.lines) expect(JSON.stringify(line).length).toBeLessThan(4096);
    });
  });

  it('beginShutdown → UNAVAILABLE "gateway is shutting down" for new calls; in-flight calls finish', async () => {
    const { service, request, downstream, store } = setup();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const entered = new Promise<void>((resolve) => (started = resolve));
    downstream.behaviour = async () => {
      started();
      await gate;
      return { resultCode: 'ok', payload: new Uint8Array() };
    };
    const inflight = service.execute(request(alice));
    await entered;
    service.beginShutdown();
    const reads = store.reads;
    await expectFailure(service.execute(request(alice)), 'unavailable', 'gateway is shutting down');
    expect(store.reads).toBe(reads);
    release();
    await expect(inflight).resolves.toMatchObject({ resultCode: 'ok' });
  });

  it('a revoke applied while the replay reservation is in flight → FAILED_PRECONDITION, downstream not called', async () => {
    const controlled = new ControlledReplayStore();
    const { service, request, downstream, sessionEvents } = setup({ replay: controlled });
    const pending = service.execute(request(alice));
    await controlled.reached(1);
    sessionEvents.handle({ id: '1-0', fields: alice.record('revoked') });
    controlled.calls[0]?.outcome.resolve('reserved');
    await expectFailure(pending, 'failed_precondition', 'device session is revoked');
    expect(downstream.calls).toHaveLength(0);
  });

  it('an active snapshot during the reservation does not block the command', async () => {
    const controlled = new ControlledReplayStore();
    const { service, request, downstream, sessionEvents } = setup({ replay: controlled });
    const pending = service.execute(request(alice));
    await controlled.reached(1);
    sessionEvents.handle({ id: '1-0', fields: alice.record('active') });
    controlled.calls[0]?.outcome.resolve('reserved');
    await expect(pending).resolves.toMatchObject({ resultCode: 'ok' });
    expect(downstream.calls).toHaveLength(1);
    expect(controlled.calls[0]).toMatchObject({ deviceSessionId: 'ds-alice', ttlMs: 2 * WINDOW });
  });

  describe('logging', () => {
    it('logs each call with session, user, type, request id, status and duration — never payload or signature', async () => {
      const { service, request, logger, downstream } = setup();
      const ok = request(alice, { requestId: 'log-ok' });
      const result = await service.execute(ok);
      const bad = request(alice, { requestId: 'log-bad' });
      await failure(service.execute({ ...bad, signature: flipByte(bad.signature) }));
      downstream.behaviour = () => Promise.reject(new Error('kaput'));
      const broken = request(alice, { requestId: 'log-broken' });
      await failure(service.execute(broken));

      const lines = logger.find('command');
      expect(lines.map((l) => l.fields['status'])).toEqual(['ok', 'unauthenticated', 'internal']);
      for (const line of lines) {
        expect(line.fields).toMatchObject({ device_session_id: 'ds-alice', message_type: 'profile.get' });
        expect(typeof line.fields['duration_ms']).toBe('number');
      }
      expect(lines[0]?.fields).toMatchObject({ request_id: 'log-ok', user_id: 'u-alice' });
      expect(lines[1]?.fields).toMatchObject({ request_id: 'log-bad', reason: 'invalid request signature' });
      const text = logger.serialized();
      expect(text).not.toContain('BYTES(');
      expect(text).not.toContain(SECRET);
      for (const bytes of [ok.payload, ok.signature, bad.signature, broken.signature, result.signature, result.payload]) {
        const b = Buffer.from(bytes);
        expect(text).not.toContain(b.toString('hex'));
        expect(text).not.toContain(b.toString('base64'));
      }
    });
  });

  describe('failure lines are rate-bounded per (transport, code) (SPEC §8.5)', () => {
    /** A service whose limiter's clock stands still: every call below is in one second. */
    const frozen = () => setup({ requestLog: (logger, harness) => new RequestLogLimiter({ logger, metrics: harness.metrics, now: () => 0 }) });

    it('a flood of refused commands writes 10 command lines a second per transport; metrics count every request; successes are all logged', async () => {
      const { service, request, logger, harness } = frozen();
      const forged = (i: number) => {
        const r = request(alice, { requestId: `forged-${i}` });
        return { ...r, signature: flipByte(r.signature) };
      };
      await Promise.all(Array.from({ length: 30 }, (_, i) => failure(service.execute(forged(i), { transport: 'websocket' }))));
      await Promise.all(Array.from({ length: 15 }, (_, i) => failure(service.execute(forged(100 + i), { transport: 'grpc' }))));
      for (let i = 0; i < 25; i += 1) await service.execute(request(alice, { requestId: `fine-${i}` }), { transport: 'websocket' });
      const lines = logger.find('command');
      expect(lines.filter((l) => l.fields['status'] === 'unauthenticated')).toHaveLength(2 * FAILURE_LINES_PER_SECOND);
      expect(lines.filter((l) => l.fields['status'] === 'ok')).toHaveLength(25);
      expect(await harness.value(MetricNames.logLinesSuppressed, { reason: 'UNAUTHENTICATED' })).toBe(30 - 10 + (15 - 10));
      // Another code of the same transport has its own budget.
      await failure(service.execute(request(alice, { requestId: 'bad id!' }), { transport: 'websocket' }));
      expect(logger.find('command').filter((l) => l.fields['status'] === 'invalid_argument')).toHaveLength(1);
    });

    it("a failed downstream call's two lines are written together or not at all", async () => {
      const { service, request, logger, downstream } = frozen();
      downstream.behaviour = () => Promise.reject(new Error('kaput'));
      await Promise.all(Array.from({ length: 20 }, (_, i) => failure(service.execute(request(alice, { requestId: `broken-${i}` }), { transport: 'grpc' }))));
      const commandIds = logger.find('command').map((l) => l.fields['request_id']);
      expect(commandIds).toHaveLength(FAILURE_LINES_PER_SECOND);
      expect(logger.find('downstream command failed').map((l) => l.fields['request_id'])).toEqual(commandIds);
    });
  });

  it("puts the caller's trace id on the command line when the call context carries one", async () => {
    const { service, request, logger } = setup();
    const traced = trace.setSpanContext(ROOT_CONTEXT, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.SAMPLED });
    await service.execute(request(alice, { messageType: 'profile.get', requestId: 'traced-1' }), { traceContext: traced });
    await service.execute(request(alice, { messageType: 'profile.get', requestId: 'untraced-1' }), { traceContext: ROOT_CONTEXT });
    const [tracedLine, untracedLine] = logger.find('command');
    expect(tracedLine?.fields).toMatchObject({ request_id: 'traced-1', trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' });
    expect(untracedLine?.fields['request_id']).toBe('untraced-1');
    expect(untracedLine?.fields).not.toHaveProperty('trace_id');
  });

  describe('crypto in the threadpool only under load', () => {
    /** Starts `n` commands, holds them all at the downstream, then releases them together. */
    async function runTogether(s: ReturnType<typeof setup>, n: number): Promise<void> {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let arrived = 0;
      let allArrived!: () => void;
      const everyoneWaiting = new Promise<void>((resolve) => (allArrived = resolve));
      s.downstream.behaviour = async () => {
        if ((arrived += 1) === n) allArrived();
        await gate;
        return { resultCode: 'ok', payload: new Uint8Array(0) };
      };
      const calls = Array.from({ length: n }, (_, i) => s.service.execute(s.request(alice, { messageType: 'profile.get', requestId: `together-${n}-${i}` })));
      await everyoneWaiting;
      expect(s.service.commandsInFlight).toBe(n);
      release();
      const results = await Promise.all(calls);
      for (const result of results) expect(verifyEd25519(ed25519PublicKeyFromRaw(s.signer.publicKey), commandResultBytes(result), result.signature)).toBe(true);
    }

    it(`signs inline below ${DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT} commands in flight and in the threadpool from there on`, async () => {
      const signer = new ModeRecordingSigner();
      const s = setup({ signer });
      await runTogether(s, 1);
      expect(signer.modes).toEqual(['inline']);
      signer.modes.length = 0;
      await runTogether(s, DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT);
      expect(signer.modes).toEqual(Array(DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT).fill('threadpool'));
      expect(s.service.commandsInFlight).toBe(0);
    });

    it(`hands off only while the event loop is at least ${DEFAULT_ASYNC_CRYPTO_MIN_LOOP_UTILIZATION * 100} % busy, however many commands are in flight`, async () => {
      let utilization = DEFAULT_ASYNC_CRYPTO_MIN_LOOP_UTILIZATION - 0.01;
      const signer = new ModeRecordingSigner();
      const s = setup({ signer, loopUtilization: () => utilization });
      await runTogether(s, DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT * 2);
      expect(signer.modes).toEqual(Array(DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT * 2).fill('inline'));
      signer.modes.length = 0;
      utilization = DEFAULT_ASYNC_CRYPTO_MIN_LOOP_UTILIZATION;
      await runTogether(s, DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT);
      expect(signer.modes).toEqual(Array(DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT).fill('threadpool'));
    });

    it('by default (asyncCrypto unset) every command verifies and signs inline, however many are in flight and however busy the loop', async () => {
      const signer = new ModeRecordingSigner();
      const base = setup({ signer, loopUtilization: () => 1 });
      const inline = new CommandService({ sessions: base.cache, replay: base.replay, router: base.router, signer, clock: base.clock, freshnessWindowMs: WINDOW, loopUtilization: () => 1 });
      await runTogether({ ...base, service: inline }, DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT * 2);
      expect(signer.modes).toEqual(Array(DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT * 2).fill('inline'));
    });

    it('asyncCryptoMinInFlight 0 always offloads; asyncCrypto false never does', async () => {
      const always = new ModeRecordingSigner();
      await runTogether(setup({ signer: always, asyncCryptoMinInFlight: 0 }), 1);
      expect(always.modes).toEqual(['threadpool']);
      const never = new ModeRecordingSigner();
      await runTogether(setup({ signer: never, asyncCrypto: false, asyncCryptoMinInFlight: 0 }), 3);
      expect(never.modes).toEqual(['inline', 'inline', 'inline']);
    });
  });
});
