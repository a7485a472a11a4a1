import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DeviceClient,
  GatewaySignatureError,
  GatewayStatusError,
  RateLimitedError,
  StatusCodes,
  commandRequestBytesAsync,
  commandResultBytesAsync,
  encodeServerTime,
  eventBytesAsync,
  subscribeRequestBytes,
  toHex,
  type DeviceClientOptions,
  type DeviceTransport,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type GatewayEvent,
  type ReceivedEvent,
  type SubscribeEventsRequest,
  type TransportCallOptions,
  type TransportStreamOptions,
} from '@edge-gateway/protocol';

// The shared device client against a fake transport: what every transport (gRPC, WebSocket,
// yours) gets without writing it. The keys and bytes are the SPEC §3 test vectors.

interface VectorCase {
  readonly name: string;
  readonly fields: Record<string, string | number>;
  readonly canonical_hex: string;
  readonly signature_hex: string;
}
const vectors = JSON.parse(readFileSync(new URL('../../core/test/vectors/signing.json', import.meta.url), 'utf8')) as {
  keys: Record<'client' | 'gateway', { private_key_pem: string; public_key_base64: string; key_id: string }>;
  cases: VectorCase[];
};
const vector = (name: string): VectorCase => vectors.cases.find((c) => c.name === name) ?? (() => { throw new Error(`no vector ${name}`); })();
const fromHex = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'));

const deviceKey = createPrivateKey(vectors.keys.client.private_key_pem);
const devicePublicKey = createPublicKey(deviceKey);
const gatewayKey = createPrivateKey(vectors.keys.gateway.private_key_pem);
const GATEWAY_KEY_ID = vectors.keys.gateway.key_id;
const DEVICE_SESSION = 'ds_01HZX3Q7';
const USER = 'u_42';
const T0 = 1764201600000;

const deviceSigner = (data: Uint8Array): Uint8Array => sign(null, data, deviceKey);

async function signedEvent(fields: Omit<GatewayEvent, 'signerKeyId' | 'signature'>, key = gatewayKey): Promise<GatewayEvent> {
  return { ...fields, signerKeyId: GATEWAY_KEY_ID, signature: sign(null, await eventBytesAsync(fields), key) };
}

/** The bootstrap answering `request` (server clock = `serverTimeMs`). */
function bootstrap(request: SubscribeEventsRequest, serverTimeMs = T0): Promise<GatewayEvent> {
  return signedEvent({ eventId: '', eventType: 'gateway.server_time', userId: USER, deviceSessionId: DEVICE_SESSION, timestampMs: serverTimeMs, payload: encodeServerTime(serverTimeMs, request.requestId) });
}

function clientEvent(eventId: string, text = eventId): Promise<GatewayEvent> {
  return signedEvent({ eventId, eventType: 'chat.message', userId: USER, deviceSessionId: '', timestampMs: T0, payload: new TextEncoder().encode(text) });
}

async function signedResult(requestId: string, resultCode = 'ok'): Promise<ExecuteCommandResponse> {
  const fields = { requestId, resultCode, timestampMs: T0, payload: new Uint8Array([1]) };
  return { ...fields, signerKeyId: GATEWAY_KEY_ID, signature: sign(null, await commandResultBytesAsync(fields), gatewayKey) };
}

/** One scripted push stream: the events the gateway sends after the bootstrap, then its end. */
interface StreamScript {
  readonly bootstrap?: boolean;
  readonly events?: ReadonlyArray<(request: SubscribeEventsRequest) => Promise<GatewayEvent>>;
  readonly end?: Error;
}

/**
 * A transport that frames nothing: it records every signed request it is handed and answers
 * from scripts. Streams that are left early record it (`returned`).
 */
class FakeTransport implements DeviceTransport {
  readonly commands: Array<{ request: ExecuteCommandRequest; options: TransportCallOptions }> = [];
  readonly subscribes: Array<{ request: SubscribeEventsRequest; options: TransportStreamOptions }> = [];
  readonly returned: number[] = [];
  closed = false;
  /** The transport's own retry rule (default: none, the client's `isRetryableStatus`). */
  isRetryable?: (error: unknown) => boolean;
  commandAnswers: Array<(request: ExecuteCommandRequest) => Promise<ExecuteCommandResponse>> = [];
  streams: StreamScript[] = [];

  async execute(request: ExecuteCommandRequest, options: TransportCallOptions): Promise<ExecuteCommandResponse> {
    this.commands.push({ request, options });
    const answer = this.commandAnswers.shift();
    if (answer === undefined) throw new Error('no scripted answer');
    return answer(request);
  }

  async *subscribe(request: SubscribeEventsRequest, options: TransportStreamOptions): AsyncGenerator<ReceivedEvent> {
    const index = this.subscribes.push({ request, options }) - 1;
    const script = this.streams[index];
    if (script === undefined) throw new Error(`stream #${index} was not scripted`);
    let finished = false;
    try {
      if (script.bootstrap !== false) yield { event: await bootstrap(request) };
      for (const make of script.events ?? []) yield { event: await make(request) };
      finished = true;
      if (script.end !== undefined) throw script.end;
    } finally {
      if (!finished) this.returned.push(index);
    }
  }

  close(): void {
    this.closed = true;
  }
}

/** A local clock the sleeps move: `sleep(ms)` advances it by `ms` at once and records `ms`. */
function fakeTime(start = T0) {
  let now = start;
  const sleeps: number[] = [];
  return {
    clock: () => now,
    sleep: async (ms: number, signal: AbortSignal | undefined) => {
      if (signal?.aborted) return false;
      sleeps.push(ms);
      now += ms;
      return true;
    },
    sleeps,
    advance: (ms: number) => (now += ms),
  };
}

function clientOn(transport: FakeTransport, over: Partial<DeviceClientOptions> = {}) {
  const time = fakeTime();
  const client = new DeviceClient({
    transport,
    deviceSessionId: DEVICE_SESSION,
    privateKey: deviceSigner,
    gatewayPublicKeys: [vectors.keys.gateway.public_key_base64],
    clock: time.clock,
    sleep: time.sleep,
    random: () => 0,
    ...over,
  });
  return { client, time };
}

const verifiesWithDeviceKey = (data: Uint8Array, signature: Uint8Array): boolean => verify(null, data, devicePublicKey, signature);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('DeviceClient signing (SPEC §3)', () => {
  it('signs an ExecuteCommand request with the spec bytes: the vector signature for the vector fields', async () => {
    const transport = new FakeTransport();
    const { client } = clientOn(transport);
    const v = vector('execute-command request');
    transport.commandAnswers.push((request) => signedResult(request.requestId));
    const result = await client.execute(String(v.fields.message_type), fromHex(String(v.fields.payload_hex)), { requestId: String(v.fields.request_id) });

    const sent = transport.commands[0]!.request;
    expect(sent).toMatchObject({ deviceSessionId: v.fields.device_session_id, messageType: v.fields.message_type, requestId: v.fields.request_id, timestampMs: v.fields.timestamp_ms });
    expect(toHex(await commandRequestBytesAsync(sent))).toBe(v.canonical_hex);
    expect(toHex(sent.signature)).toBe(v.signature_hex);
    expect(result).toMatchObject({ requestId: 'req-0001', resultCode: 'ok', signerKeyId: GATEWAY_KEY_ID });
  });

  it('signs a SubscribeEvents request with the spec bytes, a WebCrypto key giving the same signature as a signer function', async () => {
    const v = vector('subscribe-events request');
    vi.spyOn(globalThis.crypto, 'randomUUID').mockReturnValue(String(v.fields.request_id) as ReturnType<typeof crypto.randomUUID>);
    const pkcs8 = deviceKey.export({ format: 'der', type: 'pkcs8' });
    const webKey = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
    for (const privateKey of [deviceSigner, webKey]) {
      const transport = new FakeTransport();
      transport.streams = [{}];
      const { client } = clientOn(transport, { privateKey });
      for await (const event of client.subscribe()) expect(event.eventType).toBe('gateway.server_time');
      const sent = transport.subscribes[0]!.request;
      expect(sent).toMatchObject({ deviceSessionId: DEVICE_SESSION, requestId: 'sub-0001', timestampMs: T0, resumeAfterEventId: '' });
      expect(toHex(subscribeRequestBytes(sent))).toBe(v.canonical_hex);
      expect(toHex(sent.signature)).toBe(v.signature_hex);
    }
  });

  it('a request id of its own per command by default; timestamps on the gateway clock learned from the bootstrap', async () => {
    const transport = new FakeTransport();
    // The gateway's clock is 90 s ahead of the device's.
    transport.streams = [{ bootstrap: false, events: [(request) => bootstrap(request, T0 + 90_000)] }];
    const { client } = clientOn(transport);
    for await (const event of client.subscribe()) expect(event.serverTime?.serverTimeMs).toBe(T0 + 90_000);
    expect(client.clockOffsetMs).toBe(90_000);
    transport.commandAnswers.push((request) => signedResult(request.requestId), (request) => signedResult(request.requestId));
    await client.execute('demo.a', new Uint8Array(0));
    await client.execute('demo.a', new Uint8Array(0));
    const [a, b] = transport.commands.map((c) => c.request);
    expect(a!.requestId).not.toBe(b!.requestId);
    expect(a!.timestampMs).toBe(T0 + 90_000);
    expect(verifiesWithDeviceKey(await commandRequestBytesAsync(a!), a!.signature)).toBe(true);
  });

  it('a malformed trusted key throws TypeError at construction', () => {
    const transport = new FakeTransport();
    expect(() => clientOn(transport, { gatewayPublicKeys: ['AAAA'] })).toThrow(new TypeError('a gateway public key must be 32 raw bytes (or their base64)'));
    expect(() => clientOn(transport, { gatewayPublicKeys: [] })).toThrow(TypeError);
  });
});

describe('DeviceClient verification', () => {
  it('refuses a command response altered after signing, and one answering another request', async () => {
    const transport = new FakeTransport();
    const { client } = clientOn(transport);
    transport.commandAnswers.push(async (request) => {
      const response = await signedResult(request.requestId);
      return { ...response, resultCode: 'paid' };
    });
    await expect(client.execute('demo.x', new Uint8Array(0))).rejects.toThrow(new GatewaySignatureError('command response has an invalid signature'));
    transport.commandAnswers.push(() => signedResult('someone-elses'));
    await expect(client.execute('demo.x', new Uint8Array(0), { requestId: 'mine' })).rejects.toThrow('command response answers request "someone-elses", not "mine"');
  });

  it('a forged event ends the stream with GatewaySignatureError, cancels it on the transport, and does not move the resume cursor', async () => {
    const transport = new FakeTransport();
    const forged = async (): Promise<GatewayEvent> => ({ ...(await clientEvent('1-1', 'genuine')), payload: new TextEncoder().encode('forged') });
    transport.streams = [{ events: [() => clientEvent('1-0'), forged, () => clientEvent('1-2')] }];
    const { client } = clientOn(transport);
    const seen: string[] = [];
    const error = await (async () => {
      for await (const event of client.subscribe()) seen.push(event.eventId || event.eventType);
    })().catch((e: unknown) => e);
    expect(error).toEqual(new GatewaySignatureError('event chat.message has an invalid signature'));
    expect(seen).toEqual(['gateway.server_time', '1-0']);
    expect(client.lastEventId).toBe('1-0');
    expect(transport.returned).toEqual([0]);
  });

  it('refuses an event signed by a key it does not trust, even with the trusted key id', async () => {
    const transport = new FakeTransport();
    const stranger = createPrivateKey({ key: Buffer.from('302e020100300506032b657004220420' + '11'.repeat(32), 'hex'), format: 'der', type: 'pkcs8' });
    transport.streams = [{ events: [async () => signedEvent({ eventId: '1-0', eventType: 'chat.message', userId: USER, deviceSessionId: '', timestampMs: T0, payload: new Uint8Array(0) }, stranger)] }];
    const { client } = clientOn(transport);
    const iterator = client.subscribe()[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ eventType: 'gateway.server_time' });
    await expect(iterator.next()).rejects.toThrow(GatewaySignatureError);
    expect(client.lastEventId).toBe('');
  });
});

describe('DeviceClient session state and reconnects', () => {
  it('the resume cursor advances with each verified client event; resumeAfterEventId is signed into the subscribe', async () => {
    const transport = new FakeTransport();
    transport.streams = [{ events: [() => clientEvent('5-0'), () => clientEvent('5-1')] }];
    const { client } = clientOn(transport);
    const cursors: string[] = [];
    for await (const event of client.subscribe({ resumeAfterEventId: '4-9' })) cursors.push(`${event.eventId || 'bootstrap'}:${client.lastEventId}`);
    expect(cursors).toEqual(['bootstrap:', '5-0:5-0', '5-1:5-1']);
    const sent = transport.subscribes[0]!.request;
    expect(sent.resumeAfterEventId).toBe('4-9');
    expect(verifiesWithDeviceKey(subscribeRequestBytes(sent), sent.signature)).toBe(true);
    expect(client.userId).toBe(USER);
  });

  it('autoReconnect: after UNAVAILABLE, a newly signed subscribe resumes after the last verified event id, after the backoff', async () => {
    const transport = new FakeTransport();
    transport.streams = [
      { events: [() => clientEvent('7-0'), () => clientEvent('7-1')], end: new GatewayStatusError(StatusCodes.UNAVAILABLE, 'gateway is shutting down') },
      { end: new GatewayStatusError(StatusCodes.UNAVAILABLE, 'connection closed (1006)') },
      { events: [() => clientEvent('7-2')] },
    ];
    const { client, time } = clientOn(transport);
    const seen: string[] = [];
    for await (const event of client.subscribe({ autoReconnect: true, backoff: { initialMs: 100, maxMs: 1000 } })) seen.push(event.eventId || 'bootstrap');
    expect(seen).toEqual(['bootstrap', '7-0', '7-1', 'bootstrap', 'bootstrap', '7-2']);
    const requests = transport.subscribes.map((s) => s.request);
    expect(requests.map((r) => r.resumeAfterEventId)).toEqual(['', '7-1', '7-1']);
    expect(new Set(requests.map((r) => r.requestId)).size).toBe(3);
    for (const request of requests) expect(verifiesWithDeviceKey(subscribeRequestBytes(request), request.signature)).toBe(true);
    expect(transport.subscribes.map((s) => s.options.reconnecting)).toEqual([true, true, true]);
    // random() = 0: half of each delay; every bootstrap resets the backoff.
    expect(time.sleeps).toEqual([50, 50]);
    expect(requests[1]!.timestampMs).toBe(T0 + 50);
  });

  it('autoReconnect: a status the transport calls final ends the iteration, nothing is reopened', async () => {
    const transport = new FakeTransport();
    transport.streams = [{ events: [() => clientEvent('8-0')], end: new GatewayStatusError(StatusCodes.FAILED_PRECONDITION, 'device session is revoked') }];
    const { client } = clientOn(transport);
    const iterator = client.subscribe({ autoReconnect: true })[Symbol.asyncIterator]();
    await iterator.next();
    await iterator.next();
    await expect(iterator.next()).rejects.toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
    expect(transport.subscribes).toHaveLength(1);
  });

  it("autoReconnect asks the transport which ends are retryable (a transport's own rule wins over UNAVAILABLE)", async () => {
    const transport = new FakeTransport();
    const calls: unknown[] = [];
    transport.isRetryable = (error: unknown) => (calls.push(error), false);
    const lost = new GatewayStatusError(StatusCodes.UNAVAILABLE, 'connection closed (1000 client closed)');
    transport.streams = [{ end: lost }];
    const { client } = clientOn(transport);
    await expect((async () => { for await (const _ of client.subscribe({ autoReconnect: true })) void _; })()).rejects.toBe(lost);
    expect(calls).toEqual([lost]);
  });

  it('a rate-limited open is reopened after at least retryAfterMs', async () => {
    const transport = new FakeTransport();
    transport.streams = [{ bootstrap: false, end: new RateLimitedError(3000) }, {}];
    const { client, time } = clientOn(transport);
    const seen: string[] = [];
    for await (const event of client.subscribe({ autoReconnect: true })) seen.push(event.eventType);
    expect(seen).toEqual(['gateway.server_time']);
    expect(time.sleeps).toEqual([3000]);
    expect(transport.subscribes[1]!.request.timestampMs).toBe(T0 + 3000);
  });

  it('aborting ends the iteration quietly, whatever error the transport ends the stream with', async () => {
    const transport = new FakeTransport();
    const abort = new AbortController();
    transport.streams = [{ events: [async () => (abort.abort(), clientEvent('9-0'))], end: new GatewayStatusError(StatusCodes.CANCELLED, 'Cancelled on client') }];
    const { client } = clientOn(transport);
    const seen: string[] = [];
    for await (const event of client.subscribe({ signal: abort.signal })) seen.push(event.eventId || 'bootstrap');
    expect(seen).toEqual(['bootstrap', '9-0']);
    expect(transport.subscribes[0]!.options.signal).toBe(abort.signal);
  });

  it('close() closes the transport', () => {
    const transport = new FakeTransport();
    clientOn(transport).client.close();
    expect(transport.closed).toBe(true);
  });
});

describe('DeviceClient commands: deadlines and rate-limit retries (injected clock)', () => {
  it('rateLimitRetries: waits retryAfterMs on the clock, then resends the same request_id signed anew', async () => {
    const transport = new FakeTransport();
    const { client, time } = clientOn(transport);
    transport.commandAnswers.push(
      async () => {
        throw new RateLimitedError(1500);
      },
      (request) => signedResult(request.requestId),
    );
    const result = await client.execute('pay.now', new Uint8Array([1]), { rateLimitRetries: 2, timeoutMs: 10_000 });
    expect(time.sleeps).toEqual([1500]);
    const [first, second] = transport.commands;
    expect(second!.request.requestId).toBe(first!.request.requestId);
    expect(result.requestId).toBe(first!.request.requestId);
    expect(second!.request.timestampMs).toBe(first!.request.timestampMs + 1500);
    expect(toHex(second!.request.signature)).not.toBe(toHex(first!.request.signature));
    expect(verifiesWithDeviceKey(await commandRequestBytesAsync(second!.request), second!.request.signature)).toBe(true);
    // One deadline for every attempt: the time left shrinks by the wait.
    expect([first!.options.timeoutMs, second!.options.timeoutMs]).toEqual([10_000, 8_500]);
  });

  it('no retry whose wait would end past the deadline; without retries the RateLimitedError reaches the app', async () => {
    const transport = new FakeTransport();
    const { client, time } = clientOn(transport);
    const refuse = async (): Promise<never> => {
      throw new RateLimitedError(1500);
    };
    transport.commandAnswers.push(refuse, refuse);
    await expect(client.execute('pay.now', new Uint8Array(0), { rateLimitRetries: 3, timeoutMs: 1000 })).rejects.toMatchObject({ name: 'RateLimitedError', retryAfterMs: 1500 });
    await expect(client.execute('pay.now', new Uint8Array(0))).rejects.toBeInstanceOf(RateLimitedError);
    expect(time.sleeps).toEqual([]);
    expect(transport.commands).toHaveLength(2);
  });

  it('a deadline already passed fails DEADLINE_EXCEEDED and sends nothing; an aborted signal fails CANCELLED and sends nothing', async () => {
    const transport = new FakeTransport();
    const { client, time } = clientOn(transport);
    await expect(client.execute('demo.x', new Uint8Array(0), { deadlineMs: time.clock() })).rejects.toMatchObject({ code: StatusCodes.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
    await expect(client.execute('demo.x', new Uint8Array(0), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: StatusCodes.CANCELLED, details: 'cancelled' });
    expect(transport.commands).toEqual([]);
  });
});
