import { connect, constants as http2 } from 'node:http2';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CALLS_PER_CONNECTION, MetricNames, StaticRouter, parseFailureLimit, type CommandDownstream } from '@edge-gateway/core';
import { MetricsHarness } from '@edge-gateway/core/testing/metrics';
import { ExecuteCommandRequest } from '../src/generated/index.js';
import { GatewayFixture, signedCommand } from './fixtures.js';

const EXECUTE = '/edgegateway.v1.EdgeGateway/ExecuteCommand';

/** `demo.*` answers at once; `slow.*` waits until released (and is cut when its call is). */
function downstreams() {
  const held: Array<() => void> = [];
  let arrived: () => void = () => undefined;
  const holding = new Promise<void>((resolve) => (arrived = resolve));
  const router = new StaticRouter([
    { prefix: 'demo.', downstream: { target: 'demo', execute: async (c) => ({ resultCode: 'ok', payload: c.payload }) } satisfies CommandDownstream },
    {
      prefix: 'slow.',
      downstream: {
        target: 'slow',
        execute: (c, context) =>
          new Promise((resolve, reject) => {
            held.push(() => resolve({ resultCode: 'ok', payload: c.payload }));
            context.signal?.addEventListener('abort', () => reject(new Error('cancelled')), { once: true });
            arrived();
          }),
      } satisfies CommandDownstream,
    },
  ]);
  return { router, holding, release: () => held.forEach((r) => r()) };
}

/** One bare HTTP/2 connection (no client library: no reconnect, no retry). */
function bare(address: string) {
  const session = connect(`http://${address}`);
  session.on('error', () => undefined);
  const goaway = new Promise<{ code: number; data: string }>((resolve) => session.once('goaway', (code, _last, data) => resolve({ code, data: data?.toString() ?? '' })));
  const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  const remoteSettings = new Promise<{ maxConcurrentStreams?: number }>((resolve) => session.once('remoteSettings', resolve));
  const call = (message: ExecuteCommandRequest) =>
    new Promise<{ code: number; details: string }>((resolve) => {
      const stream = session.request({ ':method': 'POST', ':path': EXECUTE, 'content-type': 'application/grpc', te: 'trailers' });
      let headers: Record<string, unknown> = {};
      stream.on('response', (h) => (headers = { ...h }));
      stream.on('trailers', (t) => (headers = { ...headers, ...t }));
      stream.on('data', () => undefined);
      stream.on('error', () => undefined);
      stream.on('close', () => resolve({ code: Number(headers['grpc-status'] ?? -1), details: decodeURIComponent(String(headers['grpc-message'] ?? '')) }));
      const body = Buffer.from(ExecuteCommandRequest.encode(message).finish());
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      stream.end(frame);
    });
  return { session, goaway, closed, remoteSettings, call };
}

let f: GatewayFixture | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

describe('gRPC connection bounds (SPEC §2.3)', () => {
  it('advertises at most 100 calls at once per connection', async () => {
    f = await GatewayFixture.start();
    const connection = bare(f.server.address);
    expect((await connection.remoteSettings).maxConcurrentStreams).toBe(MAX_CALLS_PER_CONNECTION);
    connection.session.destroy();
  });

  it('the refusal past the failure budget gets its status; the running calls end RESOURCE_EXHAUSTED "too many failed requests"; GOAWAY, then the connection closes', async () => {
    const harness = new MetricsHarness();
    const { router, holding, release } = downstreams();
    f = await GatewayFixture.start({ router, metrics: harness.metrics, connectionLimits: { failureLimit: parseFailureLimit('1/h:3') } });
    const device = f.addDevice();
    const connection = bare(f.server.address);
    const running = connection.call(signedCommand(device, { messageType: 'slow.op' }));
    await holding;
    const refusals = [];
    for (let i = 0; i < 4; i += 1) refusals.push(await connection.call(signedCommand(device, { timestampMs: 1 })));
    expect(refusals).toEqual(Array.from({ length: 4 }, () => ({ code: status.UNAUTHENTICATED, details: 'request timestamp is outside the freshness window' })));
    expect(await running).toEqual({ code: status.RESOURCE_EXHAUSTED, details: 'too many failed requests' });
    expect(await connection.goaway).toEqual({ code: http2.NGHTTP2_ENHANCE_YOUR_CALM, data: 'too many failed requests' });
    await connection.closed;
    expect(await harness.value(MetricNames.connectionsClosed, { transport: 'grpc', reason: 'failures' })).toBe(1);
    // Counted once the core gave the call up (its downstream call is cancelled).
    await expect.poll(() => harness.value('gateway_grpc_requests_total', { method: 'ExecuteCommand', code: 'RESOURCE_EXHAUSTED' }), { timeout: 5000 }).toBe(1);
    expect(await harness.value('gateway_grpc_requests_total', { method: 'ExecuteCommand', code: 'UNAUTHENTICATED' })).toBe(4);
    release();
    // Another connection has a budget of its own.
    const next = bare(f.server.address);
    expect((await next.call(signedCommand(device))).code).toBe(status.OK);
    next.session.destroy();
  });
});
