import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { WebGatewayClient, importDevicePrivateKey, type BackoffOptions, type VerifiedEvent, type WebSocketConstructor } from '@edge-gateway/client-web';
import { StatusCodes } from '@edge-gateway/protocol';
import { WsFixture, type Device } from './fixture.js';

let f: WsFixture | undefined;
const clients: WebGatewayClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await f?.stop();
  f = undefined;
});

const SERVER_TIME = 'gateway.server_time';
const FAST = { initialMs: 10, maxMs: 50 };

/**
 * A `ws` WebSocket constructor that keeps every socket the client opens; from the
 * `unreachableFrom`-th socket on (0-based) it dials a closed port instead (the gateway is gone).
 */
function recordingWebSocket(unreachableFrom = Infinity): { Ctor: WebSocketConstructor; sockets: WebSocket[] } {
  const sockets: WebSocket[] = [];
  class Recorded extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(sockets.length >= unreachableFrom ? 'ws://127.0.0.1:1/v1/ws' : url, protocols);
      sockets.push(this);
    }
  }
  return { Ctor: Recorded as unknown as WebSocketConstructor, sockets };
}

async function clientOn(fixture: WsFixture, device: Device, Ctor: WebSocketConstructor): Promise<WebGatewayClient> {
  const client = await WebGatewayClient.connect({
    url: fixture.url,
    deviceSessionId: device.deviceSessionId,
    privateKey: await importDevicePrivateKey(device.privateKey.export({ format: 'der', type: 'pkcs8' })),
    gatewayPublicKeys: [fixture.signer.publicKey],
    WebSocket: Ctor,
  });
  clients.push(client);
  return client;
}

/** Reads until `predicate` holds for what was read; throws when the stream ends first. */
async function readUntil(iterator: AsyncIterator<VerifiedEvent>, seen: VerifiedEvent[], predicate: () => boolean): Promise<void> {
  while (!predicate()) {
    const next = await iterator.next();
    if (next.done === true) throw new Error(`stream ended after ${seen.map((e) => e.eventId || e.eventType).join(',')}`);
    seen.push(next.value);
  }
}

const ids = (events: readonly VerifiedEvent[]) => events.filter((e) => e.eventId !== '').map((e) => e.eventId);

/**
 * A fresh fixture (`f`), a device and its client on a recorded WebSocket (connections from
 * number `unreachableFrom` on fail to open), subscribed with autoReconnect, past its bootstrap.
 */
async function reconnectingSubscription(backoff: BackoffOptions, unreachableFrom?: number) {
  f = await WsFixture.start();
  const device = f.addDevice();
  const ws = recordingWebSocket(unreachableFrom);
  const client = await clientOn(f, device, ws.Ctor);
  const events = client.subscribe({ autoReconnect: true, backoff })[Symbol.asyncIterator]();
  expect((await events.next()).value).toMatchObject({ eventType: SERVER_TIME });
  return { fixture: f, device, ws, client, events };
}

describe('client-web subscribe({ autoReconnect })', () => {
  it('a connection lost without a status (1006): dials a new connection and resumes after the last event, without loss or duplicates', async () => {
    f = await WsFixture.start();
    const fixture = f;
    const device = fixture.addDevice();
    const ws = recordingWebSocket();
    const client = await clientOn(fixture, device, ws.Ctor);
    const abort = new AbortController();
    const events = client.subscribe({ autoReconnect: true, backoff: FAST, signal: abort.signal })[Symbol.asyncIterator]();
    const seen: VerifiedEvent[] = [];
    await readUntil(events, seen, () => seen.length === 1);
    const published = [fixture.publish(device.userId, 'a', new Uint8Array([1])), fixture.publish(device.userId, 'b', new Uint8Array([2]))];
    await readUntil(events, seen, () => ids(seen).length === 2);

    const lost = client.closed;
    // The network goes away under the client: no close frame, no status frame.
    ws.sockets[0]?.terminate();
    expect((await lost).code).toBe(1006);
    published.push(fixture.publish(device.userId, 'c', new Uint8Array([3])));
    await readUntil(events, seen, () => ids(seen).length === 3);
    published.push(fixture.publish(device.userId, 'd', new Uint8Array([4])));
    await readUntil(events, seen, () => ids(seen).length === 4);

    expect(ids(seen)).toEqual(published);
    expect(seen.filter((e) => e.eventType === SERVER_TIME)).toHaveLength(2);
    expect(ws.sockets).toHaveLength(2);
    expect(client.lastEventId).toBe(published.at(-1));
    // Later calls use the new connection.
    expect(await client.execute('echo.ping', new Uint8Array([7]), { requestId: 'after-reconnect' })).toMatchObject({ requestId: 'after-reconnect', resultCode: 'ok' });
    abort.abort();
    expect(await events.next()).toEqual({ done: true, value: undefined });
  });

  it("the app's close() ends the iteration with the close, and nothing reconnects", async () => {
    const { ws, client, events } = await reconnectingSubscription(FAST);
    const ended = events.next();
    client.close();
    await expect(ended).rejects.toMatchObject({ code: StatusCodes.UNAVAILABLE, details: 'connection closed (1000 client closed)' });
    expect(ws.sockets).toHaveLength(1);
  });

  it('a connection lost, then close() before the retry: the retry does not dial', async () => {
    // A long backoff: close() lands during the wait.
    const { ws, client, events } = await reconnectingSubscription({ initialMs: 200, maxMs: 200 });
    const ended = events.next();
    const lost = client.closed;
    ws.sockets[0]?.terminate();
    await lost;
    client.close();
    await expect(ended).rejects.toMatchObject({ code: StatusCodes.UNAVAILABLE, details: 'connection closed (1000 client closed)' });
    expect(ws.sockets).toHaveLength(1);
  });

  it('a revoked session ends the iteration with FAILED_PRECONDITION and is not reopened', async () => {
    const { device, ws, events, fixture } = await reconnectingSubscription(FAST);
    const ended = events.next();
    fixture.revoke(device);
    await expect(ended).rejects.toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
    expect(ws.sockets).toHaveLength(1);
  });

  it('a close for a protocol error (1002) is final: not retried', async () => {
    const { ws, events } = await reconnectingSubscription(FAST);
    const ended = events.next();
    // A frame shorter than the header on the client's own connection: the gateway closes it 1002.
    ws.sockets[0]?.send(new Uint8Array([1, 2]));
    await expect(ended).rejects.toMatchObject({ code: StatusCodes.UNAVAILABLE, details: 'connection closed (1002 malformed frame)' });
    expect(ws.sockets).toHaveLength(1);
  });

  it('maxAttempts: gives up with UNAVAILABLE after that many failed dials when the gateway stays unreachable', async () => {
    const { ws, events } = await reconnectingSubscription({ ...FAST, maxAttempts: 2 }, 1);
    const ended = events.next();
    ws.sockets[0]?.terminate();
    await expect(ended).rejects.toMatchObject({ code: StatusCodes.UNAVAILABLE, details: 'websocket closed before it opened (1006)' });
    // The first connection, then one dial per attempt, none of which opened.
    expect(ws.sockets).toHaveLength(3);
  });
});
