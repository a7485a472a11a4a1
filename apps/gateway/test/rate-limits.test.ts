import { sign } from 'node:crypto';
import { Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeGatewayClient } from '@edge-gateway/adapters-grpc/generated';
import { RateLimitedError, commandRequestBytes } from '@edge-gateway/client';
import { WebGatewayClient, importDevicePrivateKey, type WebSocketConstructor } from '@edge-gateway/client-web';
import {
  FrameTypes,
  StatusCodes,
  WEBSOCKET_PATH,
  WEBSOCKET_SUBPROTOCOL,
  WEBSOCKET_SUBPROTOCOL_TRAILERS,
  decodeFrame,
  decodeStatus,
  decodeStatusWithTrailers,
  encodeExecuteCommandRequest,
  encodeFrame,
  type CallStatus,
} from '@edge-gateway/protocol';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { scrape } from './drill-support.js';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { EchoDownstream, activeDeviceOn, clientFor, connectRedis, type Device, type RawRedis } from '@edge-gateway/test-utils/system-support';

// SPEC §4 step 7 on the built binary, for each GATEWAY_RATE_LIMIT_STORE.

const RULES = [
  'session:load.=20/s:20', // the 3x flood
  // Slow rules where a test needs a bucket to stay empty between two steps: a loaded machine
  // must not refill it meanwhile.
  'user:user.=1/m:1', // one budget for all of a user's devices
  'session:retry.=30/m:1', // retry-after (at most 2 s), id reuse, trailers, SDK retries
  'session:fleet.=1/m:1', // one budget across processes (redis) or one each (local)
  'session_streams=1/m:1',
].join(',');

const STORES = ['local', 'redis'] as const;

let redis: RedisServerHandle;
let raw: RawRedis;
let downstream: EchoDownstream;
let signer: ReturnType<typeof writeSignerKey>;

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  downstream = await new EchoDownstream().start();
  signer = writeSignerKey();
});

afterAll(async () => {
  downstream?.stop();
  await raw?.quit();
  await redis?.stop();
});

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const seen = (requestIds: Iterable<string>): number => {
  const wanted = new Set(requestIds);
  return downstream.calls.filter((c) => wanted.has(c.command.requestId)).length;
};

function signedCommand(device: Device, messageType: string, requestId: string) {
  const fields = { deviceSessionId: device.deviceSessionId, messageType, requestId, timestampMs: Date.now(), payload: bytes(requestId) };
  return { ...fields, signature: sign(null, commandRequestBytes(fields), device.privateKey) };
}

/** One command through the generated client: the status and its trailers as the gateway sent them. */
function rawExecute(grpc: string, device: Device, messageType: string, requestId: string): Promise<{ code: number; details: string; trailers: Record<string, unknown> }> {
  const client = new EdgeGatewayClient(grpc, credentials.createInsecure());
  return new Promise((resolve) => {
    const request = signedCommand(device, messageType, requestId);
    client.executeCommand({ ...request, payload: Buffer.from(request.payload) }, new Metadata(), (error: ServiceError | null) => {
      client.close();
      resolve(error === null ? { code: 0, details: '', trailers: {} } : { code: error.code, details: error.details, trailers: error.metadata.getMap() });
    });
  });
}

/** One command over a bare WebSocket offering `protocols`: the status frame as the gateway sent it. */
async function rawWebSocketExecute(url: string, protocols: string[], device: Device, messageType: string, requestId: string): Promise<{ protocol: string; type: number; status: CallStatus }> {
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  try {
    const answer = new Promise<{ type: number; body: Uint8Array }>((resolve) => ws.once('message', (data: Buffer) => resolve(decodeFrame(new Uint8Array(data)))));
    ws.send(encodeFrame(FrameTypes.execute, 1, encodeExecuteCommandRequest(signedCommand(device, messageType, requestId))));
    const frame = await answer;
    const status =
      frame.type === FrameTypes.statusWithTrailers ? decodeStatusWithTrailers(frame.body) : frame.type === FrameTypes.status ? decodeStatus(frame.body) : { code: StatusCodes.OK, details: '' };
    return { protocol: ws.protocol, type: frame.type, status };
  } finally {
    ws.close();
  }
}

describe.each(STORES)('rate limits with GATEWAY_RATE_LIMIT_STORE=%s (built binary)', (store) => {
  let gateway: GatewayProcess;
  let grpc: string;
  let websocket: string;
  let admin: string;
  const env = () =>
    gatewayEnv(redis, signer.path, {
      GATEWAY_RATE_LIMITS: RULES,
      GATEWAY_RATE_LIMIT_STORE: store,
      GATEWAY_DOWNSTREAM_ROUTES: ['load.', 'user.', 'retry.', 'fleet.'].map((prefix) => `${prefix}=127.0.0.1:${downstream.port}`).join(','),
      GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0',
      GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
      GATEWAY_LOG_LEVEL: 'info',
    });

  beforeAll(async () => {
    gateway = new GatewayProcess(env());
    const started = await gateway.started();
    grpc = started.grpc;
    websocket = `ws://${started.websocket ?? ''}${WEBSOCKET_PATH}`;
    admin = started.adminHttp ?? '';
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('a device at 3x its limit for 10 s gets the limit within 5 %, and the downstream sees exactly the admitted commands', async () => {
    const device = await activeDeviceOn(raw, `load-${store}`);
    const client = clientFor(device, grpc, signer.publicKeyRaw);
    const refusedBefore = await scrape(admin, 'gateway_rate_limited_total', { scope: 'session', route: 'load.' });
    try {
      // The connection first (an unrouted type: no rule applies, nothing drawn), so the flood's
      // first command does not wait for it while the clock runs.
      await expect(client.execute('warm.up', bytes('x'))).rejects.toMatchObject({ code: StatusCodes.UNIMPLEMENTED });
      // 60 commands/s on a fixed schedule (not waiting for answers), for 10 s.
      const started = Date.now();
      const outcomes: Array<Promise<{ id: string; ok: boolean }>> = [];
      for (let i = 0; i < 600; i++) {
        const due = started + (i * 1000) / 60;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const id = `load-${store}-${i}`;
        outcomes.push(
          client.execute('load.tick', bytes(id), { requestId: id }).then(
            () => ({ id, ok: true }),
            (error: unknown) => {
              if (!(error instanceof RateLimitedError)) throw error;
              expect(error.retryAfterMs).toBeGreaterThan(0);
              expect(error.retryAfterMs).toBeLessThanOrEqual(50);
              return { id, ok: false };
            },
          ),
        );
      }
      const sentS = (Date.now() - started) / 1000;
      const settled = await Promise.all(outcomes);
      const answeredS = (Date.now() - started) / 1000;
      const admitted = settled.filter((o) => o.ok);
      // GCRA admits burst + rate x the span over which the gateway saw the requests: at least the
      // span they were sent over (the flood keeps the bucket drained), at most until the last
      // answer. A loaded machine stretches both spans; measuring them keeps the check exact.
      expect(admitted.length).toBeLessThanOrEqual(Math.ceil(20 + 20 * answeredS) + 1);
      expect(admitted.length).toBeGreaterThanOrEqual(Math.floor(0.95 * (20 + 20 * sentS)));
      expect(admitted.length).toBeLessThanOrEqual(Math.ceil(1.05 * (20 + 20 * answeredS)));
      // Exactly the admitted reached the downstream, each once; no refused one did.
      expect(seen(admitted.map((o) => o.id))).toBe(admitted.length);
      expect(seen(settled.filter((o) => !o.ok).map((o) => o.id))).toBe(0);
      expect((await scrape(admin, 'gateway_rate_limited_total', { scope: 'session', route: 'load.' })) - refusedBefore).toBe(settled.length - admitted.length);
    } finally {
      client.close();
    }
  }, 60_000);

  it('a second device of the same user is limited by the user rule; another user is not', async () => {
    const phone = await activeDeviceOn(raw, `user-${store}`);
    const laptop = await activeDeviceOn(raw, `user-${store}`);
    const stranger = await activeDeviceOn(raw, `other-${store}`);
    const [a, b, c] = [phone, laptop, stranger].map((d) => clientFor(d, grpc, signer.publicKeyRaw)) as [ReturnType<typeof clientFor>, ReturnType<typeof clientFor>, ReturnType<typeof clientFor>];
    try {
      await expect(a.execute('user.act', bytes('a'))).resolves.toMatchObject({ resultCode: 'ok' });
      const refused = await b.execute('user.act', bytes('b')).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RateLimitedError);
      expect(refused).toMatchObject({ code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded' });
      expect((refused as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(60_000);
      await expect(c.execute('user.act', bytes('c'))).resolves.toMatchObject({ resultCode: 'ok' });
      expect(await scrape(admin, 'gateway_rate_limited_total', { scope: 'user', route: 'user.' })).toBeGreaterThanOrEqual(1);
    } finally {
      for (const client of [a, b, c]) client.close();
    }
  });

  it('gRPC: retry-after-ms and grpc-retry-pushback-ms trailers; the limited id leaves no reservation and is admitted after the wait', async () => {
    const device = await activeDeviceOn(raw, `trailers-${store}`);
    expect((await rawExecute(grpc, device, 'retry.a', `first-${store}`)).code).toBe(0);
    const id = `again-${store}`;
    const refused = await rawExecute(grpc, device, 'retry.a', id);
    expect(refused).toMatchObject({ code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded' });
    const retryAfter = Number(refused.trailers['retry-after-ms']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(2000);
    expect(refused.trailers['grpc-retry-pushback-ms']).toBe(String(retryAfter));
    // No reservation was made for the refused request.
    expect(await raw.exists(`gateway:replay:${device.deviceSessionId}/${id}`)).toBe(0);
    expect(seen([id])).toBe(0);
    // The limiter's own time is the event: wait what the gateway said.
    await new Promise((resolve) => setTimeout(resolve, retryAfter));
    expect((await rawExecute(grpc, device, 'retry.a', id)).code).toBe(0);
    expect(seen([id])).toBe(1);
    expect(await raw.exists(`gateway:replay:${device.deviceSessionId}/${id}`)).toBe(1);
  });

  it('WebSocket: an edgegateway.v1 client reads code and message; an edgegateway.v1.1 client also gets the retry-after', async () => {
    const device = await activeDeviceOn(raw, `ws-${store}`);
    expect((await rawWebSocketExecute(websocket, [WEBSOCKET_SUBPROTOCOL], device, 'retry.b', `ws-first-${store}`)).type).toBe(FrameTypes.result);
    const old = await rawWebSocketExecute(websocket, [WEBSOCKET_SUBPROTOCOL], device, 'retry.b', `ws-old-${store}`);
    expect(old).toEqual({ protocol: WEBSOCKET_SUBPROTOCOL, type: FrameTypes.status, status: { code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded' } });
    const current = await rawWebSocketExecute(websocket, [WEBSOCKET_SUBPROTOCOL_TRAILERS, WEBSOCKET_SUBPROTOCOL], device, 'retry.b', `ws-new-${store}`);
    expect(current).toMatchObject({ protocol: WEBSOCKET_SUBPROTOCOL_TRAILERS, type: FrameTypes.statusWithTrailers, status: { code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded' } });
    expect(current.status.retryAfterMs).toBeGreaterThan(0);
    expect(current.status.retryAfterMs).toBeLessThanOrEqual(2000);
  });

  it.each(['grpc', 'websocket'] as const)('the %s SDK waits the retry-after and sends the same request_id again when asked to retry', async (sdk) => {
    const device = await activeDeviceOn(raw, `sdk-${sdk}-${store}`);
    const web =
      sdk === 'websocket'
        ? await WebGatewayClient.connect({
            url: websocket,
            deviceSessionId: device.deviceSessionId,
            userId: device.userId,
            privateKey: await importDevicePrivateKey(device.privateKey.export({ format: 'der', type: 'pkcs8' })),
            gatewayPublicKeys: [signer.publicKeyRaw],
            WebSocket: WebSocket as unknown as WebSocketConstructor,
          })
        : undefined;
    const grpcClient = sdk === 'grpc' ? clientFor(device, grpc, signer.publicKeyRaw) : undefined;
    const execute = (requestId: string, rateLimitRetries: number) =>
      web !== undefined ? web.execute('retry.sdk', bytes(requestId), { requestId, rateLimitRetries }) : (grpcClient as ReturnType<typeof clientFor>).execute('retry.sdk', bytes(requestId), { requestId, rateLimitRetries });
    try {
      await expect(execute(`sdk-0-${sdk}-${store}`, 0)).resolves.toMatchObject({ resultCode: 'ok' });
      // Without retries the app gets the error and its retry-after.
      const refused = await execute(`sdk-1-${sdk}-${store}`, 0).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RateLimitedError);
      const retryAfter = (refused as RateLimitedError).retryAfterMs;
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(2000);
      // With one retry allowed: refused once more (the bucket has not refilled), waits, passes.
      const id = `sdk-2-${sdk}-${store}`;
      const before = Date.now();
      await expect(execute(id, 1)).resolves.toMatchObject({ requestId: id, resultCode: 'ok' });
      expect(Date.now() - before).toBeGreaterThanOrEqual(Math.min(retryAfter, 200) - 20);
      expect(seen([id])).toBe(1);
    } finally {
      web?.close();
      grpcClient?.close();
    }
  });

  it('session_streams: a second stream open within the minute is refused with its retry-after; nothing stays registered', async () => {
    const device = await activeDeviceOn(raw, `streams-${store}`);
    const client = clientFor(device, grpc, signer.publicKeyRaw);
    try {
      const first = client.subscribe()[Symbol.asyncIterator]();
      await expect(first.next()).resolves.toMatchObject({ value: { eventType: 'gateway.server_time' } });
      const second = client.subscribe()[Symbol.asyncIterator]();
      const refused = await second.next().catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RateLimitedError);
      expect((refused as RateLimitedError).retryAfterMs).toBeGreaterThan(1000);
      expect((refused as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(60_000);
      await first.return?.();
    } finally {
      client.close();
    }
    expect(await scrape(admin, 'gateway_rate_limited_total', { scope: 'session_streams', route: '*' })).toBe(1);
  });

  it(store === 'redis' ? 'two gateway processes share one budget' : 'two gateway processes count apart (each admits the rule)', async () => {
    const second = new GatewayProcess(env());
    const device = await activeDeviceOn(raw, `fleet-${store}`);
    try {
      const other = (await second.started()).grpc;
      expect((await rawExecute(grpc, device, 'fleet.go', `fleet-1-${store}`)).code).toBe(0);
      const onSecond = await rawExecute(other, device, 'fleet.go', `fleet-2-${store}`);
      if (store === 'redis') {
        expect(onSecond).toMatchObject({ code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded' });
        expect(await raw.exists(`gateway:replay:${device.deviceSessionId}/fleet-2-${store}`)).toBe(0);
      } else {
        expect(onSecond.code).toBe(0);
      }
      // Either way the first process has used its budget.
      expect((await rawExecute(grpc, device, 'fleet.go', `fleet-3-${store}`)).code).toBe(StatusCodes.RESOURCE_EXHAUSTED);
    } finally {
      await second.stop();
    }
  });

  it('logs the refusals once per (session, rule) per 10 s, not once per call', () => {
    const lines = gateway.logs.filter((l) => l.message === 'rate limit exceeded' && String(l['rule']) === 'session:load.=20/s:20');
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(gateway.logs.filter((l) => l.message === 'command' && String(l['message_type']) === 'load.tick' && l['status'] !== 'ok')).toEqual([]);
  });
});
