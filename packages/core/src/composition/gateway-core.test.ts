import { describe, expect, it, vi } from 'vitest';
import { CapturingLogger, CountingSigner, FakeDownstream, RecordingSink, TestDevice, clientEventFields } from '../../test/helpers.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import type { GatewayEvent } from '../domain.js';
import { FakeClock } from '../memory/fake-clock.js';
import { InMemoryEventStream } from '../memory/in-memory-event-stream.js';
import { InMemoryReplayStore } from '../memory/in-memory-replay-store.js';
import { InMemoryRevocationStore } from '../memory/in-memory-revocation-store.js';
import { InMemorySessionStore } from '../memory/in-memory-session-store.js';
import type { ResponseSigner } from '../ports/response-signer.port.js';
import type { PushSink } from '../push/push-hub.js';
import { StaticRouter } from '../routing/static-router.js';
import { createGatewayCore } from './gateway-core.js';
import { runShutdown } from './shutdown.js';

const alice = new TestDevice('ds-core-alice', 'u-core-alice');

function setup(signer: ResponseSigner = new CountingSigner()) {
  const clock = new FakeClock();
  const sessions = new InMemorySessionStore();
  sessions.set(alice.deviceSessionId, alice.record('active'));
  const events = new InMemoryEventStream(clock);
  const downstream = new FakeDownstream();
  const logger = new CapturingLogger();
  const core = createGatewayCore(
    {
      sessions,
      replay: new InMemoryReplayStore(clock),
      signer,
      history: events,
      router: new StaticRouter([{ prefix: 'profile.', downstream }]),
      clock,
      logger,
    },
    { pushStreamBuffer: 4, asyncCrypto: false },
  );
  events.subscribe(core.clientEvents);
  const publish = (payload: string) => events.append(clientEventFields(alice.userId, 'chat.message', payload));
  const subscribe = () => alice.subscribe({ timestampMs: clock.now() });
  return { clock, sessions, core, events, publish, subscribe, logger };
}

describe('createGatewayCore', () => {
  it('shares one session cache: a revoke on session-events fails the next command and closes the stream', async () => {
    const { core, clock, sessions, subscribe } = setup();
    await expect(core.execute(alice.command({ timestampMs: clock.now() }))).resolves.toMatchObject({ resultCode: 'ok' });
    const sink = new RecordingSink();
    expect(await core.openStream(subscribe(), sink).opened).toBe(true);

    // The store still says active: only the shared cache knows about the revoke.
    core.sessionEvents.handle({ id: '1-0', fields: alice.record('revoked') });
    expect(sessions.reads).toBe(1);
    await expect(core.execute(alice.command({ timestampMs: clock.now() }))).rejects.toMatchObject({
      code: GatewayErrorCode.FailedPrecondition,
      message: 'device session is revoked',
    });
    expect(sink.ends.map((e) => e?.message)).toEqual(['device session is revoked']);
    expect(core.hub.size).toBe(0);
  });

  it('a revocation survives a failover: refused throughout, written back to the new master, kept for twice the freshness window', async () => {
    const clock = new FakeClock();
    const sessions = new InMemorySessionStore();
    sessions.set(alice.deviceSessionId, alice.record('active'));
    const sessionEvents = new InMemoryEventStream(clock);
    const downstream = new FakeDownstream();
    const core = createGatewayCore(
      {
        sessions,
        replay: new InMemoryReplayStore(clock),
        revocations: new InMemoryRevocationStore(sessions, sessionEvents),
        signer: new CountingSigner(),
        router: new StaticRouter([{ prefix: 'profile.', downstream }]),
        clock,
      },
      { asyncCrypto: false, freshnessWindowMs: 60_000 },
    );
    sessionEvents.subscribe(core.sessionEvents);
    const refused = { code: GatewayErrorCode.FailedPrecondition, message: 'device session is revoked' };
    await expect(core.execute(alice.command({ timestampMs: clock.now() }))).resolves.toMatchObject({ resultCode: 'ok' });
    sessions.set(alice.deviceSessionId, alice.record('revoked'));
    sessionEvents.append(alice.record('revoked'));
    await expect(core.execute(alice.command({ timestampMs: clock.now() }))).rejects.toMatchObject(refused);

    // Failover: the promoted replica holds the active record, the reader reconnects (cache cleared).
    sessions.set(alice.deviceSessionId, alice.record('active'));
    core.sessionEvents.onReconnect({ historyDiverged: true, masterChanged: true });
    await expect(core.execute(alice.command({ timestampMs: clock.now() }))).rejects.toMatchObject(refused);
    await vi.waitFor(() => expect(sessions.peekRecord(alice.deviceSessionId)?.['status']).toBe('revoked'));
    expect(sessionEvents.length).toBe(2);
    expect(downstream.calls).toHaveLength(1);
    expect(core.revocations.size).toBe(1);

    // The remembered revocation outlives the cache for twice the freshness window.
    sessions.set(alice.deviceSessionId, alice.record('active'));
    clock.advance(2 * 60_000 - 1);
    core.sessionEvents.onReconnect();
    await expect(core.execute(alice.command({ timestampMs: clock.now() }))).rejects.toMatchObject(refused);
    clock.advance(1);
    expect(core.revocations.list()).toEqual([]);
  });

  it('has harmless defaults: no router means UNIMPLEMENTED, no history means an incomplete resume', async () => {
    const clock = new FakeClock();
    const sessions = new InMemorySessionStore();
    sessions.set(alice.deviceSessionId, alice.record('active'));
    const core = createGatewayCore({ sessions, replay: new InMemoryReplayStore(clock), signer: new CountingSigner(), clock });
    await expect(core.execute(alice.command({ timestampMs: clock.now(), messageType: 'billing.pay' }))).rejects.toMatchObject({
      code: GatewayErrorCode.Unimplemented,
      message: 'no route for message type billing.pay',
    });
    const sink = new RecordingSink();
    await core.openStream(alice.subscribe({ timestampMs: clock.now(), resumeAfterEventId: '1-0' }), sink).opened;
    expect(sink.types).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
  });
});

describe('GatewayCore.openStream', () => {
  it('applies a drain that arrived before the stream opened', async () => {
    const { core, publish, subscribe } = setup();
    const written: GatewayEvent[] = [];
    let drainEarly: (() => void) | undefined;
    const sink: PushSink = {
      write: (event) => {
        written.push(event);
        // The transport's buffer is full after the bootstrap and drains at once: before
        // subscribe() resolved, so the core must remember it.
        drainEarly?.();
        drainEarly = undefined;
        return written.length > 1;
      },
      end: () => undefined,
    };
    const stream = core.openStream(subscribe(), sink);
    drainEarly = () => stream.resume();
    expect(await stream.opened).toBe(true);
    publish('after the drain');
    expect(written.map((e) => e.eventType)).toEqual(['gateway.server_time', 'chat.message']);
  });

  it('frees the hub slot for a cancel that arrived before the stream opened, and writes nothing', async () => {
    const { core, subscribe, publish } = setup();
    const sink = new RecordingSink();
    const stream = core.openStream(subscribe(), sink);
    stream.cancel();
    expect(await stream.opened).toBe(false);
    publish('nobody listens');
    expect(core.hub.size).toBe(0);
    expect(sink.events).toEqual([]);
    expect(sink.ends).toEqual([]);
  });

  it('ends the sink once with the refusal of a failed check', async () => {
    const { core, clock } = setup();
    const sink = new RecordingSink();
    const stranger = new TestDevice('ds-core-stranger', 'u-core-stranger');
    const stream = core.openStream(stranger.subscribe({ timestampMs: clock.now() }), sink);
    expect(await stream.opened).toBe(false);
    stream.cancel();
    expect(sink.ends).toHaveLength(1);
    expect(sink.ends[0]).toBeInstanceOf(GatewayError);
    expect(sink.ends[0]).toMatchObject({ code: GatewayErrorCode.Unauthenticated, message: 'unknown device session' });
  });

  it('turns an unexpected failure into INTERNAL "internal error" and logs it', async () => {
    const failing: ResponseSigner = {
      keyId: '0000000000000000',
      publicKey: new Uint8Array(32),
      sign: () => {
        throw new Error('hsm unplugged');
      },
    };
    const { core, subscribe, logger } = setup(failing);
    const sink = new RecordingSink();
    expect(await core.openStream(subscribe(), sink).opened).toBe(false);
    expect(sink.ends[0]).toMatchObject({ code: GatewayErrorCode.Internal, message: 'internal error' });
    expect(logger.lines.some((l) => l.message === 'unexpected error opening push stream' && String(l.fields['error']).includes('hsm unplugged'))).toBe(true);
  });
});

describe('GatewayCore.shutdownSteps', () => {
  it('refuses new requests, stops the event sources, closes the streams, then transports and resources', async () => {
    const { core, clock, subscribe } = setup();
    const order: string[] = [];
    const sink = new RecordingSink();
    await core.openStream(subscribe(), sink).opened;
    const steps = core.shutdownSteps({
      onShuttingDown: () => order.push('readiness'),
      // `close` is the verb; a source with only the deprecated `stop` is still stopped.
      eventSources: [{ close: () => order.push(`sources (streams open: ${core.hub.size})`) }, { stop: () => order.push('deprecated stop') }],
      transports: [{ component: 'ws server', stop: () => order.push(`transport (streams open: ${core.hub.size})`) }],
      resources: [{ component: 'store', stop: () => order.push('store') }],
    });
    expect(steps.map((s) => s.component)).toEqual(['readiness', 'stream subscribers', 'push hub', 'ws server', 'store']);
    expect(await runShutdown(steps, 1000, new CapturingLogger())).toBe(true);
    expect(order).toEqual(['readiness', 'sources (streams open: 1)', 'deprecated stop', 'transport (streams open: 0)', 'store']);
    expect(sink.ends.map((e) => e?.message)).toEqual(['gateway is shutting down']);
    expect(core.shuttingDown).toBe(true);
    await expect(core.execute(alice.command({ timestampMs: clock.now() }))).rejects.toMatchObject({ message: 'gateway is shutting down' });
    const late = new RecordingSink();
    await core.openStream(subscribe(), late).opened;
    expect(late.ends.map((e) => e?.message)).toEqual(['gateway is shutting down']);
  });
});
