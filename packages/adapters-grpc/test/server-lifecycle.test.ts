import { Client, credentials, makeGenericClientConstructor, status, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { type Meter } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError, GatewayErrorCode, GatewayMetrics, StaticRouter, type CommandDownstream } from '@edge-gateway/core';
import { bindAddress, grpcStatusFor, startGrpcServer, toServiceError } from '../src/index.js';
import { callStatusOf } from '../src/status-mapping.js';
import { GatewayFixture, execute, signedCommand, signedSubscribe, statusOf, subscribe } from './fixtures.js';

/** A Meter whose instruments record every call by instrument name. */
function recordingMeter(): { meter: Meter; calls: Map<string, Array<[number, unknown]>>; collect: () => void } {
  const calls = new Map<string, Array<[number, unknown]>>();
  const instrument = (name: string) => {
    const push = (value: number, labels?: unknown) => {
      const list = calls.get(name) ?? [];
      list.push([value, labels]);
      calls.set(name, list);
    };
    return { add: push, record: push };
  };
  const observable = () => ({ addCallback: () => undefined, removeCallback: () => undefined });
  // As an SDK collects: the batch callbacks first (GatewayMetrics hands its summed counts over there).
  const batch: Array<(result: unknown) => void> = [];
  const meter = {
    createCounter: instrument,
    createHistogram: instrument,
    createUpDownCounter: instrument,
    createObservableGauge: observable,
    addBatchObservableCallback: (callback: (result: unknown) => void) => batch.push(callback),
  } as unknown as Meter;
  return { meter, calls, collect: () => batch.forEach((callback) => callback({ observe: () => undefined })) };
}

const HealthClient = makeGenericClientConstructor(healthService, 'Health');

function healthCheck(address: string, serviceName: string): Promise<string> {
  const client = new HealthClient(address, credentials.createInsecure()) as unknown as Client & {
    check(req: { service: string }, cb: (e: ServiceError | null, r?: { status: string }) => void): void;
  };
  return new Promise((resolve, reject) =>
    client.check({ service: serviceName }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(response!.status);
    }),
  );
}

/** One raw reflection request (hand-encoded protobuf) → the raw response bytes. */
function reflect(address: string, field: number, value: string): Promise<Buffer> {
  const client = new Client(address, credentials.createInsecure());
  const body = Buffer.from(value);
  const request = Buffer.concat([Buffer.from([(field << 3) | 2, body.length]), body]);
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest(
      '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    call.on('data', (data: Buffer) => {
      resolve(data);
      call.end();
    });
    call.on('error', (e: Error) => (e as ServiceError).code === status.CANCELLED || reject(e));
    call.on('status', () => client.close());
    call.write(request);
  });
}

describe('gRPC server lifecycle, health, reflection, metrics', () => {
  let f: GatewayFixture | undefined;
  afterEach(async () => {
    await f?.close();
    f = undefined;
  });

  it('maps every GatewayErrorCode and hides unexpected errors', () => {
    expect(Object.keys(grpcStatusFor).sort()).toEqual(Object.values(GatewayErrorCode).sort());
    // Core's one mapping is in protocol's numbering, which must be grpc-js's, name for name.
    for (const code of Object.values(GatewayErrorCode)) expect(grpcStatusFor[code]).toBe(status[code.toUpperCase() as keyof typeof status]);
    expect(toServiceError(new GatewayError('resource_exhausted', 'push stream overflowed'))).toEqual({ code: status.RESOURCE_EXHAUSTED, details: 'push stream overflowed' });
    expect(toServiceError(new Error('db password is hunter2'))).toEqual({ code: status.INTERNAL, details: 'internal error' });
  });

  it('a rate-limited error gets both retry trailers, whole ms rounded up; the service shares them per value, toServiceError hands out a copy', () => {
    const limited = (ms: number) => new GatewayError('resource_exhausted', 'rate limit exceeded', { retryAfterMs: ms });
    const trailers = (metadata: unknown) => (metadata as { getMap(): Record<string, unknown> }).getMap();
    const first = callStatusOf(limited(166.2));
    expect({ code: first.code, details: first.details, trailers: trailers(first.metadata) }).toEqual({
      code: status.RESOURCE_EXHAUSTED,
      details: 'rate limit exceeded',
      trailers: { 'retry-after-ms': '167', 'grpc-retry-pushback-ms': '167' },
    });
    expect(callStatusOf(limited(167)).metadata).toBe(first.metadata);
    expect(trailers(callStatusOf(limited(12)).metadata)).toEqual({ 'retry-after-ms': '12', 'grpc-retry-pushback-ms': '12' });
    const copy = toServiceError(limited(167)).metadata;
    expect(copy).not.toBe(first.metadata);
    copy?.set('retry-after-ms', '1');
    expect(trailers(callStatusOf(limited(167)).metadata)).toEqual({ 'retry-after-ms': '167', 'grpc-retry-pushback-ms': '167' });
  });

  it('parses listen addresses', () => {
    expect(bindAddress(':9090')).toEqual({
      bind: '[::]:9090',
      host: '::',
      fallback: { bind: '0.0.0.0:9090', host: '0.0.0.0' },
    });
    expect(bindAddress('127.0.0.1:0')).toEqual({ bind: '127.0.0.1:0', host: '127.0.0.1' });
    expect(bindAddress('[::1]:50051')).toEqual({ bind: '[::1]:50051', host: '[::1]' });
    expect(() => bindAddress('9090')).toThrow('invalid listen address "9090": expected host:port');
  });

  it('binds all interfaces for ":port" and answers on IPv4 loopback', async () => {
    f = await GatewayFixture.start();
    const all = await startGrpcServer({
      address: ':0',
      core: f.core,
      maxPayloadBytes: 1024,
    });
    try {
      expect(all.address).toMatch(/^(\[::\]|0\.0\.0\.0):\d+$/);
      expect(await healthCheck(`127.0.0.1:${all.port}`, '')).toBe('SERVING');
    } finally {
      await all.close(1000);
    }
  });

  it('await using closes the server at scope exit (close() is the verb, shutdown() its deprecated alias)', async () => {
    f = await GatewayFixture.start();
    let port = 0;
    let handle: Awaited<ReturnType<typeof startGrpcServer>> | undefined;
    {
      await using server = await startGrpcServer({ address: '127.0.0.1:0', core: f.core, maxPayloadBytes: 1024 });
      handle = server;
      port = server.port;
      expect(await healthCheck(`127.0.0.1:${port}`, '')).toBe('SERVING');
    }
    expect(handle.health).toBeDefined();
    await expect(healthCheck(`127.0.0.1:${port}`, '')).rejects.toMatchObject({ code: status.UNAVAILABLE });
    // Closed already: close() and the deprecated shutdown() answer the same outcome.
    await expect(handle.close()).resolves.toBe('graceful');
    await expect(handle.shutdown(1000)).resolves.toBe('graceful');
  });

  it('serves grpc.health.v1 (SERVING) and turns NOT_SERVING on shutdown', async () => {
    f = await GatewayFixture.start();
    expect(f.server.port).toBeGreaterThan(0);
    expect(f.server.address).toBe(`127.0.0.1:${f.server.port}`);
    expect(await healthCheck(f.server.address, '')).toBe('SERVING');
    expect(await healthCheck(f.server.address, 'edgegateway.v1.EdgeGateway')).toBe('SERVING');
    f.server.health.setStatus('edgegateway.v1.EdgeGateway', 'NOT_SERVING');
    expect(await healthCheck(f.server.address, 'edgegateway.v1.EdgeGateway')).toBe('NOT_SERVING');
  });

  it('serves reflection for the EdgeGateway service', async () => {
    f = await GatewayFixture.start();
    const list = await reflect(f.server.address, 7, '*');
    expect(list.toString('latin1')).toContain('edgegateway.v1.EdgeGateway');
    expect(list.toString('latin1')).toContain('grpc.health.v1.Health');
    const file = await reflect(f.server.address, 4, 'edgegateway.v1.EdgeGateway');
    expect(file.toString('latin1')).toContain('SubscribeEventsRequest');
    expect(file.toString('latin1')).toContain('resume_after_event_id');
  });

  it('records gateway_grpc_requests_total and duration by method and status name', async () => {
    const { meter, calls, collect } = recordingMeter();
    const metrics = new GatewayMetrics(meter);
    const ok: CommandDownstream = { target: 't', execute: async () => ({ resultCode: 'ok', payload: Buffer.alloc(0) }) };
    f = await GatewayFixture.start({ metrics, router: new StaticRouter([{ prefix: 'demo.', downstream: ok }]) });
    const d = f.addDevice();
    await execute(f.client, signedCommand(d));
    await statusOf(execute(f.client, signedCommand(d, { messageType: 'nope.x' })));
    const reader = subscribe(f.client, signedSubscribe(d));
    await reader.waitForEvents(1);
    f.hub.close();
    await reader.status;
    const bad = subscribe(f.client, { ...signedSubscribe(d), signature: Buffer.alloc(64) });
    await bad.status;
    // The counts reach the counter at a collection, one add per (method, code) with its sum.
    expect(calls.get('gateway_grpc_requests_total')).toBeUndefined();
    collect();
    expect(calls.get('gateway_grpc_requests_total')).toEqual([
      [1, { method: 'ExecuteCommand', code: 'OK' }],
      [1, { method: 'ExecuteCommand', code: 'UNIMPLEMENTED' }],
      [2, { method: 'SubscribeEvents', code: 'UNAVAILABLE' }],
    ]);
    collect();
    expect(calls.get('gateway_grpc_requests_total')).toHaveLength(3);
    const durations = calls.get('gateway_grpc_request_duration_seconds') ?? [];
    expect(durations.map(([, labels]) => labels)).toEqual([
      { method: 'ExecuteCommand', code: 'OK' },
      { method: 'ExecuteCommand', code: 'UNIMPLEMENTED' },
      { method: 'SubscribeEvents', code: 'UNAVAILABLE' },
      { method: 'SubscribeEvents', code: 'UNAVAILABLE' },
    ]);
    for (const [seconds] of durations) {
      expect(seconds).toBeGreaterThanOrEqual(0);
      expect(seconds).toBeLessThan(5);
    }
  });

  it('shuts down gracefully: an in-flight unary call finishes', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const inFlight = new Promise<void>((resolve) => (started = resolve));
    const slow: CommandDownstream = { target: 'slow', execute: async () => (started(), await gate, { resultCode: 'late', payload: Buffer.alloc(0) }) };
    f = await GatewayFixture.start({ router: new StaticRouter([{ prefix: 'demo.', downstream: slow }]) });
    const call = execute(f.client, signedCommand(f.addDevice()));
    await inFlight;
    const stopping = f.server.close(5000);
    release();
    await expect(call).resolves.toMatchObject({ resultCode: 'late' });
    await expect(stopping).resolves.toBe('graceful');
  });

  it('forces shutdown after the budget when a call does not finish', async () => {
    let started!: () => void;
    const inFlight = new Promise<void>((resolve) => (started = resolve));
    const hung: CommandDownstream = { target: 'hung', execute: () => (started(), new Promise(() => undefined)) };
    f = await GatewayFixture.start({ router: new StaticRouter([{ prefix: 'demo.', downstream: hung }]) });
    const call = statusOf(execute(f.client, signedCommand(f.addDevice())));
    await inFlight;
    await expect(f.server.close(200)).resolves.toBe('forced');
    // grpc-js cancels the remaining calls on forceShutdown.
    expect((await call).code).toBe(status.CANCELLED);
  });
});
