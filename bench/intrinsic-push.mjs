// The floor of the push benchmark: bench/bare-push.mjs plus exactly the work no gateway can
// skip, and nothing else (no logs, no metrics, no spans, no admission control, no bound per
// stream):
//  - per subscribe, the checks of SPEC §4: the session from an in-process map (one HGETALL per
//    session, the parsed public key object cached with it), Ed25519 verify of the request's
//    canonical bytes, one `SET P replay:<ds>/<req> 1 NX PX` on the same Redis, and a signed
//    `gateway.server_time` bootstrap event (signed per stream, SPEC §3);
//  - per client event, the entry validation of SPEC §5.4 (core's `parseClientEvent`), then ONE
//    Ed25519 signature per event (not per delivery), one encoding, written to the streams of
//    its user (only to its session's streams when the entry names one).
// Verify and sign run inline on the event loop, as a straightforward implementation would.
// node-redis runs without its default 5 s command timeout: on a loaded machine it failed most
// of the 10k storm's lookups (10k HGETALL + 10k SET NX queued at once).
// Usage: node bench/intrinsic-push.mjs <redis port> <redis password> <signer key PEM path>;
// prints `{"port":N}`.
import { readFileSync } from 'node:fs';
import { verify } from 'node:crypto';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { Ed25519ResponseSigner, encodeServerTime, eventBytes, subscribeRequestBytes } from '@edge-gateway/core';
import { EdgeGatewayService, GatewayEvent } from '@edge-gateway/adapters-grpc/generated';
import { floorRedis, readClientEvents, sessionLookup } from './floor-lib.mjs';

const [redisPort, password, keyPath] = process.argv.slice(2);
if (!keyPath) throw new Error('usage: intrinsic-push.mjs <redis port> <redis password> <signer key PEM>');
const PREFIX = 'gateway:';
const REPLAY_TTL_MS = 2 * 5 * 60_000;
const signer = Ed25519ResponseSigner.fromPem(readFileSync(keyPath));
const { redis, reader } = await floorRedis(redisPort, password);

const { session } = sessionLookup(redis, PREFIX);

/** userId -> Map(call -> deviceSessionId). */
const byUser = new Map();
/** Signs and encodes an unsigned event (core field names). */
const signedBytes = (event) => Buffer.from(GatewayEvent.encode({ ...event, signerKeyId: signer.keyId, signature: signer.sign(eventBytes(event)) }).finish());
// Events are written pre-encoded: the serializer passes the bytes through.
const service = { ...EdgeGatewayService, subscribeEvents: { ...EdgeGatewayService.subscribeEvents, responseSerialize: (bytes) => bytes } };
const fail = (call, code, details) => call.emit('error', { code, details });

const server = new Server();
server.addService(service, {
  executeCommand(_call, callback) {
    callback({ code: status.UNIMPLEMENTED, details: 'not served' });
  },
  subscribeEvents(call) {
    // A Redis failure (node-redis's own 5 s timeout on an overloaded machine) fails the call.
    subscribe(call).catch(() => fail(call, status.UNAVAILABLE, 'redis unavailable'));
  },
});

async function subscribe(call) {
  const request = call.request;
  const s = await session(request.deviceSessionId);
  if (s === null) return fail(call, status.UNAUTHENTICATED, 'unknown device session');
  if (s.revoked) return fail(call, status.FAILED_PRECONDITION, 'device session is revoked');
  if (request.signature.length !== 64 || !verify(null, subscribeRequestBytes(request), s.publicKey, request.signature)) {
    return fail(call, status.UNAUTHENTICATED, 'invalid request signature');
  }
  const reserved = await redis.set(`${PREFIX}replay:${request.deviceSessionId}/${request.requestId}`, '1', { condition: 'NX', expiration: { type: 'PX', value: REPLAY_TTL_MS } });
  if (reserved === null) return fail(call, status.ALREADY_EXISTS, 'request_id was already used');
  let streams = byUser.get(s.userId);
  if (streams === undefined) byUser.set(s.userId, (streams = new Map()));
  streams.set(call, request.deviceSessionId);
  call.on('cancelled', () => {
    streams.delete(call);
    if (streams.size === 0 && byUser.get(s.userId) === streams) byUser.delete(s.userId);
  });
  const now = Date.now();
  call.write(signedBytes({ eventId: '', eventType: 'gateway.server_time', userId: s.userId, deviceSessionId: request.deviceSessionId, timestampMs: now, payload: encodeServerTime(now, request.requestId) }));
}

/** Signs an event once, for its user's streams only. */
function onEvent(event) {
  const streams = byUser.get(event.userId);
  if (streams === undefined) return;
  const bytes = signedBytes(event);
  for (const [call, deviceSessionId] of streams) {
    if (event.deviceSessionId === '' || event.deviceSessionId === deviceSessionId) call.write(bytes);
  }
}

server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  void readClientEvents(reader, onEvent);
});
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
