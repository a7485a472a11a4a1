import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Ed25519ResponseSigner, GatewayError, StaticRouter, createGatewayCore, parseRateLimitRules, rawPublicKey, toCallStatus, type GatewayCore } from '@edge-gateway/core';
import { InMemoryEventStream, InMemoryReplayStore, InMemorySessionStore } from '@edge-gateway/core/memory';
import {
  DeviceClient,
  GatewaySignatureError,
  GatewayStatusError,
  RateLimitedError,
  StatusCodes,
  clientEventFields,
  decodeExecuteCommandRequest,
  decodeExecuteCommandResponse,
  decodeGatewayEvent,
  decodeSubscribeEventsRequest,
  encodeExecuteCommandRequest,
  encodeExecuteCommandResponse,
  encodeGatewayEvent,
  encodeSubscribeEventsRequest,
  fromBase64,
  httpStatusFor,
  sessionRecordFields,
  statusError,
  toBase64,
  type CallStatus,
  type DeviceTransport,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type ReceivedEvent,
  type StatusCode,
  type SubscribeEventsRequest,
  type TransportCallOptions,
  type TransportStreamOptions,
} from '@edge-gateway/protocol';

// "A third transport needs only framing": HTTP POST for commands and Server-Sent Events for push
// (the shape an embedder built on the core in issue 24), written here in full. The client side
// (`SseDeviceTransport`) frames and nothing else; signing, verification, the resume cursor,
// reconnects with a newly signed subscribe and rate-limit errors come from the shared
// `DeviceClient`, checked end to end against the real core pipeline (signature checks, replay
// reservations, resume from history) on the in-memory adapters.

// ---- the client side: framing only -------------------------------------------------------

/** Commands: `POST /v1/commands` with the protobuf request; push: `GET /v1/events?request=<base64>` as SSE. */
class SseDeviceTransport implements DeviceTransport {
  private readonly closing = new AbortController();

  constructor(private readonly base: string) {}

  async execute(request: ExecuteCommandRequest, options: TransportCallOptions): Promise<ExecuteCommandResponse> {
    const headers: Record<string, string> = options.timeoutMs === undefined ? {} : { 'x-timeout-ms': String(options.timeoutMs) };
    const response = await this.fetch(`${this.base}/v1/commands`, { method: 'POST', body: encodeExecuteCommandRequest(request), headers }, options.signal);
    if (response.status !== 200) throw await statusOf(response);
    return decodeExecuteCommandResponse(new Uint8Array(await response.arrayBuffer()));
  }

  async *subscribe(request: SubscribeEventsRequest, options: TransportStreamOptions): AsyncGenerator<ReceivedEvent> {
    const left = new AbortController();
    const signal = AbortSignal.any([left.signal, ...(options.signal === undefined ? [] : [options.signal])]);
    try {
      const response = await this.fetch(`${this.base}/v1/events?request=${encodeURIComponent(toBase64(encodeSubscribeEventsRequest(request)))}`, {}, signal);
      if (response.status !== 200) throw await statusOf(response);
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const chunk = await reader.read().catch((error: unknown) => {
          throw new GatewayStatusError(StatusCodes.UNAVAILABLE, 'connection lost', { cause: error });
        });
        if (chunk.done) throw new GatewayStatusError(StatusCodes.UNAVAILABLE, 'connection lost');
        buffer += decoder.decode(chunk.value, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = /^data: (.*)$/m.exec(block)?.[1] ?? '';
          if (/^event: status$/m.test(block)) {
            const status = JSON.parse(data) as CallStatus;
            if (status.code === StatusCodes.OK) return;
            throw statusError(status.code, status.details, status.retryAfterMs);
          }
          yield { event: decodeGatewayEvent(fromBase64(data)), receivedAt: Date.now() };
        }
      }
    } finally {
      left.abort();
    }
  }

  close(): void {
    this.closing.abort();
  }

  private async fetch(url: string, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.any([this.closing.signal, ...(signal === undefined ? [] : [signal])]) });
    } catch (error) {
      if (signal?.aborted === true) throw new GatewayStatusError(StatusCodes.CANCELLED, 'cancelled');
      throw new GatewayStatusError(StatusCodes.UNAVAILABLE, 'connection failed', { cause: error });
    }
  }
}

async function statusOf(response: Response): Promise<GatewayStatusError> {
  const status = (await response.json()) as CallStatus;
  return statusError(status.code, status.details, status.retryAfterMs);
}

// ---- the server side: the core behind node:http -----------------------------------------

function answerStatus(res: ServerResponse, status: CallStatus): void {
  res.writeHead(httpStatusFor[status.code as StatusCode] ?? 500, { 'content-type': 'application/json' }).end(JSON.stringify(status));
}

async function body(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

let devices = 0;

class SseGateway {
  readonly signer = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
  readonly sessions = new InMemorySessionStore();
  readonly events = new InMemoryEventStream();
  readonly core: GatewayCore;
  /** Every subscribe the gateway received, in order. */
  readonly subscribes: SubscribeEventsRequest[] = [];
  readonly open = new Set<ServerResponse>();
  private readonly server: Server;

  private constructor() {
    this.core = createGatewayCore(
      {
        sessions: this.sessions,
        replay: new InMemoryReplayStore(),
        signer: this.signer,
        history: this.events,
        router: new StaticRouter(['echo.', 'pay.'].map((prefix) => ({ prefix, downstream: { target: 'echo', execute: async (command) => ({ resultCode: 'ok', payload: command.payload }) } }))),
      },
      { rateLimits: parseRateLimitRules('session:pay.=1/m:1') },
    );
    this.events.subscribe(this.core.clientEvents);
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  static async start(): Promise<SseGateway> {
    const gateway = new SseGateway();
    await new Promise<void>((resolve) => gateway.server.listen(0, '127.0.0.1', resolve));
    return gateway;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    try {
      if (req.method === 'POST' && url.pathname === '/v1/commands') {
        const timeout = req.headers['x-timeout-ms'];
        const result = await this.core.execute(decodeExecuteCommandRequest(await body(req)), typeof timeout === 'string' ? { deadlineMs: Date.now() + Number(timeout) } : {});
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(encodeExecuteCommandResponse(result));
        return;
      }
      if (req.method !== 'GET' || url.pathname !== '/v1/events') return answerStatus(res, { code: StatusCodes.NOT_FOUND, details: 'no such route' });
      const request = decodeSubscribeEventsRequest(fromBase64(url.searchParams.get('request') ?? ''));
      this.subscribes.push(request);
      let started = false;
      const stream = this.core.openStream(request, {
        write: (event) => {
          if (!started) {
            started = true;
            this.open.add(res);
            res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
          }
          return res.write(`data: ${toBase64(encodeGatewayEvent(event))}\n\n`);
        },
        // A refused open is a failed response (SPEC §8.3), an end after the bootstrap a status event.
        end: (error) => {
          const status = error === undefined ? { code: StatusCodes.OK, details: '' } : toCallStatus(error);
          if (started) res.end(`event: status\ndata: ${JSON.stringify(status)}\n\n`);
          else answerStatus(res, status);
        },
      });
      res.on('drain', () => stream.resume());
      res.on('close', () => {
        this.open.delete(res);
        stream.cancel();
      });
    } catch (error) {
      answerStatus(res, toCallStatus(error));
    }
  }

  addDevice(): { deviceSessionId: string; userId: string; privateKey: KeyObject } {
    devices += 1;
    const device = { deviceSessionId: `ds-sse-${devices}`, userId: `user-sse-${devices}`, privateKey: generateKeyPairSync('ed25519').privateKey };
    this.sessions.set(device.deviceSessionId, sessionRecordFields({ ...device, status: 'active', clientPublicKey: rawPublicKey(device.privateKey) }));
    return device;
  }

  publish(userId: string, text: string): string {
    return this.events.append(clientEventFields({ userId, eventType: 'chat.message', payload: new TextEncoder().encode(text) }));
  }

  async stop(): Promise<void> {
    this.core.hub.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---- the tests ------------------------------------------------------------------------------

let gateway: SseGateway | undefined;
const clients: DeviceClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await gateway?.stop();
  gateway = undefined;
});

async function setup(gatewayKey?: Uint8Array) {
  gateway = await SseGateway.start();
  const device = gateway.addDevice();
  const client = new DeviceClient({
    transport: new SseDeviceTransport(gateway.url),
    deviceSessionId: device.deviceSessionId,
    privateKey: (data: Uint8Array) => sign(null, data, device.privateKey),
    gatewayPublicKeys: [gatewayKey ?? gateway.signer.publicKey],
  });
  clients.push(client);
  return { gateway, device, client };
}

describe('a third transport (HTTP POST + Server-Sent Events) that implements only framing', () => {
  it('commands: signed by the shared client, checked by the core, the result verified; statuses keep their code and message', async () => {
    const { client } = await setup();
    const result = await client.execute('echo.ping', new TextEncoder().encode('hi'), { requestId: 'sse-1', timeoutMs: 5000 });
    expect(result).toMatchObject({ requestId: 'sse-1', resultCode: 'ok' });
    expect(new TextDecoder().decode(result.payload)).toBe('hi');
    await expect(client.execute('echo.ping', new Uint8Array(0), { requestId: 'sse-1' })).rejects.toMatchObject({ code: StatusCodes.ALREADY_EXISTS, details: 'request_id was already used' });
    await expect(client.execute('nothing.here', new Uint8Array(0))).rejects.toMatchObject({ code: StatusCodes.UNIMPLEMENTED, details: 'no route for message type nothing.here' });
  });

  it("a rate-limited command is the shared client's RateLimitedError, with the gateway's retry-after", async () => {
    // The gateway's limit: `session:pay.=1/m:1`, one pay.* command a minute per session.
    const { client } = await setup();
    await expect(client.execute('pay.now', new Uint8Array(0))).resolves.toMatchObject({ resultCode: 'ok' });
    const refused = await client.execute('pay.now', new Uint8Array(0), { rateLimitRetries: 1, timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect(refused).toMatchObject({ code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded' });
    // About a minute (the gateway computed it); past the call's 5 s deadline, so not waited for.
    expect((refused as RateLimitedError).retryAfterMs).toBeGreaterThan(50_000);
  });

  it('a result signed by a key the device does not trust is refused by the shared client', async () => {
    const stranger = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
    const { client } = await setup(stranger.publicKey);
    await expect(client.execute('echo.ping', new Uint8Array(0))).rejects.toThrow(GatewaySignatureError);
  });

  it('push: verified bootstrap and events, resume cursor; after a shutdown status and after a dropped connection it reconnects with a newly signed subscribe resuming after the last verified event', async () => {
    const { gateway: g, device, client } = await setup();
    const abort = new AbortController();
    const events = client.subscribe({ autoReconnect: true, backoff: { initialMs: 10, maxMs: 50 }, signal: abort.signal })[Symbol.asyncIterator]();
    const next = async () => {
      const item = await events.next();
      if (item.done === true) throw new Error('stream ended');
      return item.value;
    };
    expect(await next()).toMatchObject({ eventType: 'gateway.server_time', userId: device.userId, deviceSessionId: device.deviceSessionId });
    expect(client.userId).toBe(device.userId);
    const first = g.publish(device.userId, 'one');
    expect(await next()).toMatchObject({ eventId: first, eventType: 'chat.message' });
    expect(client.lastEventId).toBe(first);

    // 1. The gateway ends the stream UNAVAILABLE (a shutdown would), then an event is published.
    g.core.hub.closeSession(device.deviceSessionId, GatewayError.shuttingDown());
    const missed = g.publish(device.userId, 'two');
    expect(await next()).toMatchObject({ eventType: 'gateway.server_time' });
    expect(await next()).toMatchObject({ eventId: missed });
    expect(client.lastEventId).toBe(missed);

    // 2. The connection drops without a status.
    for (const res of g.open) res.destroy();
    const third = g.publish(device.userId, 'three');
    expect(await next()).toMatchObject({ eventType: 'gateway.server_time' });
    expect(await next()).toMatchObject({ eventId: third });

    // Three opens, each a request of its own (the core's replay reservation would refuse a reused one).
    expect(g.subscribes.map((r) => r.resumeAfterEventId)).toEqual(['', first, missed]);
    expect(new Set(g.subscribes.map((r) => r.requestId)).size).toBe(3);
    abort.abort();
    expect(await events.next()).toEqual({ done: true, value: undefined });
  });

  it('a revoked session ends the subscription with FAILED_PRECONDITION, not reopened; a stream opened after it is a refused response', async () => {
    const { gateway: g, device, client } = await setup();
    const events = client.subscribe({ autoReconnect: true, backoff: { initialMs: 10 } })[Symbol.asyncIterator]();
    await events.next();
    g.sessions.set(device.deviceSessionId, sessionRecordFields({ ...device, status: 'revoked', clientPublicKey: rawPublicKey(device.privateKey) }));
    g.core.sessionEvents.handle({ id: `${Date.now()}-0`, fields: sessionRecordFields({ ...device, status: 'revoked', clientPublicKey: rawPublicKey(device.privateKey) }) });
    await expect(events.next()).rejects.toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
    await expect(client.subscribe()[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
    expect(g.subscribes).toHaveLength(2);
  });
});

