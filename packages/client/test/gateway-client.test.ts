import { generateKeyPairSync } from 'node:crypto';
import { Server, ServerCredentials, status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519ResponseSigner, GatewayError, StaticRouter, commandResultBytes, encodeServerTime, eventBytes, type CommandDownstream } from '@edge-gateway/core';
import {
  EdgeGatewayService,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type GatewayEvent,
  type SubscribeEventsRequest,
} from '@edge-gateway/adapters-grpc/generated';
import { GatewayFixture, pollUntil, type Device } from '../../adapters-grpc/test/fixtures.js';
import { GatewayBindingError, GatewayClient, GatewaySignatureError, GatewayStatusError, type VerifiedEvent } from '../src/index.js';

const echo: CommandDownstream = {
  target: 'in-process',
  execute: async (command) => ({ resultCode: 'done', payload: Buffer.concat([Buffer.from('re:'), command.payload]) }),
};

function clientFor(f: GatewayFixture, device: Device, extra: Partial<ConstructorParameters<typeof GatewayClient>[0]> = {}): GatewayClient {
  return new GatewayClient({
    address: f.server.address,
    deviceSessionId: device.deviceSessionId,
    privateKey: device.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    gatewayPublicKeys: [Buffer.from(f.signer.publicKey).toString('base64')],
    ...extra,
  });
}

/** Reads events until `count` arrived, then returns them and the iterator. */
async function take(iterator: AsyncIterator<VerifiedEvent>, count: number): Promise<VerifiedEvent[]> {
  const out: VerifiedEvent[] = [];
  while (out.length < count) {
    const next = await iterator.next();
    if (next.done === true) throw new Error(`stream ended after ${out.length} events`);
    out.push(next.value);
  }
  return out;
}

describe('GatewayClient against the real gRPC adapter', () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await GatewayFixture.start({ router: new StaticRouter([{ prefix: 'demo.', downstream: echo }]) });
  });
  afterAll(() => f.close());

  it('round-trips a signed command and verifies the signed result', async () => {
    const device = f.addDevice();
    const client = clientFor(f, device);
    try {
      const result = await client.execute('demo.echo', Buffer.from('hi'), { requestId: 'req-client-1', timeoutMs: 5000 });
      expect(result).toMatchObject({ requestId: 'req-client-1', resultCode: 'done', signerKeyId: f.signer.keyId });
      expect(Buffer.from(result.payload).toString()).toBe('re:hi');
    } finally {
      client.close();
    }
  });

  it('await using closes the channel at scope exit: a later command is refused', async () => {
    const device = f.addDevice();
    let outer: GatewayClient | undefined;
    {
      await using client = clientFor(f, device);
      outer = client;
      await expect(client.execute('demo.echo', Buffer.from('hi'), { timeoutMs: 5000 })).resolves.toMatchObject({ resultCode: 'done' });
    }
    await expect(outer.execute('demo.echo', Buffer.from('hi'), { timeoutMs: 5000 })).rejects.toThrow(/closed|shut down/i);
  });

  it('reports gateway statuses as GatewayStatusError', async () => {
    const device = f.addDevice();
    const client = clientFor(f, device);
    try {
      const error = await client.execute('nothing.here', Buffer.alloc(0)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GatewayStatusError);
      expect(error).toMatchObject({ code: status.UNIMPLEMENTED, codeName: 'UNIMPLEMENTED', details: 'no route for message type nothing.here' });
      const replay = await client.execute('demo.echo', Buffer.alloc(0), { requestId: 'dup' }).then(() => client.execute('demo.echo', Buffer.alloc(0), { requestId: 'dup' })).catch((e: unknown) => e);
      expect(replay).toMatchObject({ code: status.ALREADY_EXISTS, details: 'request_id was already used' });
    } finally {
      client.close();
    }
  });

  it('subscribes: bootstrap first (clock offset learned), then verified push events; tracks lastEventId', async () => {
    const device = f.addDevice();
    const client = clientFor(f, device);
    const controller = new AbortController();
    try {
      const iterator = client.subscribe({ signal: controller.signal })[Symbol.asyncIterator]();
      const [bootstrap] = await take(iterator, 1);
      expect(bootstrap).toMatchObject({ eventType: 'gateway.server_time', eventId: '', userId: device.userId, deviceSessionId: device.deviceSessionId });
      expect(bootstrap!.serverTime?.serverTimeMs).toBe(bootstrap!.timestampMs);
      expect(Math.abs(client.clockOffsetMs)).toBeLessThan(1000);
      expect(client.userId).toBe(device.userId);

      const id = f.publish(device.userId, 'chat.message', Buffer.from('yo'));
      const [event] = await take(iterator, 1);
      expect(event).toMatchObject({ eventId: id, eventType: 'chat.message', userId: device.userId, deviceSessionId: '' });
      expect(Buffer.from(event!.payload).toString()).toBe('yo');
      expect(client.lastEventId).toBe(id);

      controller.abort();
      await expect(iterator.next()).resolves.toMatchObject({ done: true });
      await pollUntil(() => f.hub.sessionStreams(device.deviceSessionId) === 0, 'stream to leave the hub');
    } finally {
      client.close();
    }
  });

  it('ends the iteration with GatewayStatusError FAILED_PRECONDITION when the session is revoked', async () => {
    const device = f.addDevice();
    const client = clientFor(f, device);
    try {
      const iterator = client.subscribe()[Symbol.asyncIterator]();
      await take(iterator, 1);
      f.revoke(device);
      const error = await iterator.next().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GatewayStatusError);
      expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, codeName: 'FAILED_PRECONDITION', details: 'device session is revoked' });
    } finally {
      client.close();
    }
  });

  it('cancels a command whose signal is aborted', async () => {
    const client = clientFor(f, f.addDevice());
    try {
      const error = await client.execute('demo.echo', Buffer.alloc(0), { signal: AbortSignal.abort() }).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'GatewayStatusError', code: status.CANCELLED, codeName: 'CANCELLED' });
    } finally {
      client.close();
    }
  });

  it('does not reconnect after a status other than UNAVAILABLE', async () => {
    const device = f.addDevice();
    const client = clientFor(f, device);
    try {
      const iterator = client.subscribe({ autoReconnect: true, backoff: { initialMs: 10 } })[Symbol.asyncIterator]();
      await take(iterator, 1);
      f.revoke(device);
      await expect(iterator.next()).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
      expect(f.hub.sessionStreams(device.deviceSessionId)).toBe(0);
    } finally {
      client.close();
    }
  });

  it('rejects a response signed by a key it does not trust', async () => {
    const device = f.addDevice();
    const other = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
    const client = clientFor(f, device, { gatewayPublicKeys: [other.publicKey] });
    try {
      await expect(client.execute('demo.echo', Buffer.from('x'))).rejects.toThrow(GatewaySignatureError);
      await expect(client.execute('demo.echo', Buffer.from('x'))).rejects.toThrow(`command response is signed by unknown key id "${f.signer.keyId}"`);
      const iterator = client.subscribe()[Symbol.asyncIterator]();
      await expect(iterator.next()).rejects.toThrow(GatewaySignatureError);
    } finally {
      client.close();
    }
  });

  it('resumes after lastEventId with autoReconnect when the gateway restarts the stream (UNAVAILABLE)', async () => {
    const g = await GatewayFixture.start();
    const device = g.addDevice();
    const client = clientFor(g, device);
    const controller = new AbortController();
    try {
      const iterator = client.subscribe({ autoReconnect: true, backoff: { initialMs: 10, maxMs: 50 }, signal: controller.signal })[Symbol.asyncIterator]();
      await take(iterator, 1);
      const first = g.publish(device.userId, 'chat.message', Buffer.from('1'));
      expect((await take(iterator, 1))[0]!.eventId).toBe(first);
      // Close the stream as a shutdown would, while the hub keeps accepting new streams.
      g.hub.closeSession(device.deviceSessionId, GatewayError.shuttingDown());
      const missed = g.publish(device.userId, 'chat.message', Buffer.from('2'));
      const [bootstrap, replayed] = await take(iterator, 2);
      expect(bootstrap!.eventType).toBe('gateway.server_time');
      expect(replayed!.eventId).toBe(missed);
      controller.abort();
      await expect(iterator.next()).resolves.toMatchObject({ done: true });
    } finally {
      client.close();
      await g.close();
    }
  });
});

/** A fake EdgeGateway that signs with a trusted key but misbehaves in a chosen way. */
describe('GatewayClient against a misbehaving gateway', () => {
  const signer = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
  const device = generateKeyPairSync('ed25519').privateKey;
  const deviceSessionId = 'ds-client-test';
  let server: Server;
  let address: string;
  let mode: 'flip-payload' | 'wrong-request-id' | 'other-user-event' | 'other-session-event' | 'wrong-bootstrap-request' = 'flip-payload';

  function signEvent(e: Omit<GatewayEvent, 'signature' | 'signerKeyId'>): GatewayEvent {
    return { ...e, signerKeyId: signer.keyId, signature: Buffer.from(signer.sign(eventBytes(e))) };
  }

  beforeAll(async () => {
    server = new Server();
    server.addService(EdgeGatewayService, {
      executeCommand(call: ServerUnaryCall<ExecuteCommandRequest, ExecuteCommandResponse>, callback: sendUnaryData<ExecuteCommandResponse>) {
        const fields = {
          requestId: mode === 'wrong-request-id' ? 'someone-elses' : call.request.requestId,
          resultCode: 'ok',
          timestampMs: Date.now(),
          payload: Buffer.from('genuine'),
        };
        const signature = Buffer.from(signer.sign(commandResultBytes(fields)));
        if (mode === 'flip-payload') fields.payload[0]! ^= 0x01;
        callback(null, { ...fields, signerKeyId: signer.keyId, signature });
      },
      subscribeEvents(call: ServerWritableStream<SubscribeEventsRequest, GatewayEvent>) {
        const now = Date.now();
        const requestId = mode === 'wrong-bootstrap-request' ? 'not-yours' : call.request.requestId;
        call.write(signEvent({ eventId: '', eventType: 'gateway.server_time', userId: 'user-1', deviceSessionId, timestampMs: now, payload: Buffer.from(encodeServerTime(now + 60_000, requestId)) }));
        const userId = mode === 'other-user-event' ? 'user-2' : 'user-1';
        const session = mode === 'other-session-event' ? 'ds-other' : '';
        call.write(signEvent({ eventId: `${now}-0`, eventType: 'chat.message', userId, deviceSessionId: session, timestampMs: now, payload: Buffer.from('x') }));
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => server.forceShutdown());

  let client: GatewayClient | undefined;
  afterEach(() => client?.close());
  const newClient = (userId?: string) =>
    (client = new GatewayClient({ address, deviceSessionId, privateKey: device, gatewayPublicKeys: [signer.publicKey], ...(userId === undefined ? {} : { userId }) }));

  it('rejects a response whose payload was altered after signing', async () => {
    mode = 'flip-payload';
    await expect(newClient().execute('demo.x', Buffer.alloc(0))).rejects.toThrow(new GatewaySignatureError('command response has an invalid signature'));
  });

  it('rejects a correctly signed response for another request id', async () => {
    mode = 'wrong-request-id';
    await expect(newClient().execute('demo.x', Buffer.alloc(0), { requestId: 'mine' })).rejects.toThrow(GatewayBindingError);
  });

  it('learns the clock offset from the bootstrap and ends on an event for another user', async () => {
    mode = 'other-user-event';
    const c = newClient();
    const seen: VerifiedEvent[] = [];
    const error = await (async () => {
      for await (const event of c.subscribe()) seen.push(event);
    })().catch((e: unknown) => e);
    expect(seen.map((e) => e.eventType)).toEqual(['gateway.server_time']);
    expect(c.clockOffsetMs).toBeGreaterThan(55_000);
    expect(c.clockOffsetMs).toBeLessThan(61_000);
    expect(error).toBeInstanceOf(GatewayBindingError);
    expect((error as Error).message).toBe('event for user "user-2" reached user "user-1"');
  });

  it('ends on a bootstrap for another user than the configured one', async () => {
    mode = 'flip-payload';
    await expect(newClient('user-9').subscribe()[Symbol.asyncIterator]().next()).rejects.toThrow(new GatewayBindingError('bootstrap is for user "user-1", not "user-9"'));
  });

  it('ends on an event for another device session', async () => {
    mode = 'other-session-event';
    const iterator = newClient().subscribe()[Symbol.asyncIterator]();
    await iterator.next();
    await expect(iterator.next()).rejects.toThrow(GatewayBindingError);
  });

  it('ends on a bootstrap that answers another subscribe request', async () => {
    mode = 'wrong-bootstrap-request';
    await expect(newClient().subscribe()[Symbol.asyncIterator]().next()).rejects.toThrow(/bootstrap answers subscribe request "not-yours"/);
  });

  it('ends normally when the gateway ends the stream with OK', async () => {
    mode = 'flip-payload';
    const events: string[] = [];
    for await (const event of newClient().subscribe()) events.push(event.eventType);
    expect(events).toEqual(['gateway.server_time', 'chat.message']);
  });
});
