// The intrinsic-work floor of bench/device-scale.mjs: bench/intrinsic-push.mjs (issue 17)
// extended to one connection per device, on either transport, with or without TLS. It does
// exactly the work no gateway can skip, and nothing else (no logs, metrics, spans, admission
// control, per-stream bound):
//  - per subscribe (SPEC §4): the session from an in-process map (one HGETALL per session,
//    the parsed public key cached with it), Ed25519 verify of the request's canonical bytes,
//    one `SET P replay:<ds>/<req> 1 NX PX` on the same Redis, a signed `gateway.server_time`
//    bootstrap event per stream; with `resume_after_event_id`, the user's events after that id
//    from memory (the last RING events of each user, encoded and signed as delivered), or a
//    signed `gateway.resume_incomplete` when the id is older than what it holds;
//  - per client event, the entry validation of SPEC §5.4 (core's `parseClientEvent`), ONE
//    Ed25519 signature per event (not per delivery), one encoding, written to the streams of
//    its user (framed per stream on WebSocket: 5-byte header with the stream's call id).
// gRPC: grpc-js (as the gateway), h2c or TLS. WebSocket: `ws` (as the gateway) on a node
// http/https server, path /v1/ws, subprotocol edgegateway.v1, no compression.
// Usage: node bench/intrinsic-device.mjs <grpc|ws> <redis port> <redis password> <signer key PEM>
//        [<tls cert PEM path> <tls key PEM path>]; prints `{"port":N}`.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { verify } from 'node:crypto';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { WebSocketServer } from 'ws';
import { Ed25519ResponseSigner, encodeServerTime, eventBytes, subscribeRequestBytes } from '@edge-gateway/core';
import { EdgeGatewayService, GatewayEvent, SubscribeEventsRequest } from '@edge-gateway/adapters-grpc/generated';
import { floorRedis, readClientEvents, sessionLookup } from './floor-lib.mjs';

const [transport, redisPort, password, keyPath, certPath, tlsKeyPath] = process.argv.slice(2);
if (!keyPath || !['grpc', 'ws'].includes(transport)) throw new Error('usage: intrinsic-device.mjs <grpc|ws> <redis port> <redis password> <signer key PEM> [<cert> <key>]');
const PREFIX = 'gateway:';
const REPLAY_TTL_MS = 2 * 5 * 60_000;
// Events kept per user for resumes (filled only while events flow: the idle memory figures,
// taken before any event, do not include them).
const RING = 8;
const signer = Ed25519ResponseSigner.fromPem(readFileSync(keyPath));
const { redis, reader } = await floorRedis(redisPort, password);

const { session } = sessionLookup(redis, PREFIX);

/** userId -> Set of sinks `{ deviceSessionId, write(bytes) }`. */
const byUser = new Map();
/** userId -> recent events [{ ms, seq, deviceSessionId, bytes }] (at most RING). */
const recent = new Map();
const signedBytes = (event) => Buffer.from(GatewayEvent.encode({ ...event, signerKeyId: signer.keyId, signature: signer.sign(eventBytes(event)) }).finish());
const idParts = (id) => {
  const dash = id.indexOf('-');
  return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
};
const after = (a, b) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);

/** Runs the subscribe checks; resolves the sink's user or an error `{ code, details }`. */
async function subscribe(request, sink) {
  const s = await session(request.deviceSessionId);
  if (s === null) return { code: status.UNAUTHENTICATED, details: 'unknown device session' };
  if (s.revoked) return { code: status.FAILED_PRECONDITION, details: 'device session is revoked' };
  if (request.signature.length !== 64 || !verify(null, subscribeRequestBytes(request), s.publicKey, request.signature)) {
    return { code: status.UNAUTHENTICATED, details: 'invalid request signature' };
  }
  const reserved = await redis.set(`${PREFIX}replay:${request.deviceSessionId}/${request.requestId}`, '1', { condition: 'NX', expiration: { type: 'PX', value: REPLAY_TTL_MS } });
  if (reserved === null) return { code: status.ALREADY_EXISTS, details: 'request_id was already used' };
  if (sink.gone) return undefined;
  let streams = byUser.get(s.userId);
  if (streams === undefined) byUser.set(s.userId, (streams = new Set()));
  streams.add(sink);
  sink.remove = () => {
    streams.delete(sink);
    if (streams.size === 0 && byUser.get(s.userId) === streams) byUser.delete(s.userId);
  };
  const now = Date.now();
  const base = { eventId: '', userId: s.userId, deviceSessionId: request.deviceSessionId, timestampMs: now };
  sink.write(signedBytes({ ...base, eventType: 'gateway.server_time', payload: encodeServerTime(now, request.requestId) }));
  if (request.resumeAfterEventId !== '') {
    const from = idParts(request.resumeAfterEventId);
    const ring = recent.get(s.userId) ?? [];
    // Incomplete when an event after the id was already dropped from the ring.
    if (ring.forgotten !== undefined && after(ring.forgotten, from)) {
      sink.write(signedBytes({ ...base, eventType: 'gateway.resume_incomplete', payload: Buffer.alloc(0) }));
    }
    for (const e of ring) {
      if (after([e.ms, e.seq], from) && (e.deviceSessionId === '' || e.deviceSessionId === request.deviceSessionId)) sink.write(e.bytes);
    }
  }
  return undefined;
}

/** Signs each event once; keeps it for resumes even while its user has no stream (a device reconnecting). */
function onEvent(event, id) {
  const bytes = signedBytes(event);
  let ring = recent.get(event.userId);
  if (ring === undefined) recent.set(event.userId, (ring = []));
  const [ms, seq] = idParts(id);
  ring.push({ ms, seq, deviceSessionId: event.deviceSessionId, bytes });
  if (ring.length > RING) {
    const old = ring.shift();
    ring.forgotten = [old.ms, old.seq];
  }
  const streams = byUser.get(event.userId);
  if (streams === undefined) return;
  for (const sink of streams) {
    if (event.deviceSessionId === '' || event.deviceSessionId === sink.deviceSessionId) sink.write(bytes);
  }
}

const tls = certPath ? { cert: readFileSync(certPath), key: readFileSync(tlsKeyPath) } : undefined;
let port;
if (transport === 'grpc') {
  const service = { ...EdgeGatewayService, subscribeEvents: { ...EdgeGatewayService.subscribeEvents, responseSerialize: (bytes) => bytes } };
  const server = new Server();
  server.addService(service, {
    executeCommand(_call, callback) {
      callback({ code: status.UNIMPLEMENTED, details: 'not served' });
    },
    subscribeEvents(call) {
      const sink = { deviceSessionId: call.request.deviceSessionId, write: (bytes) => call.write(bytes) };
      call.on('cancelled', () => {
        sink.gone = true;
        sink.remove?.();
      });
      subscribe(call.request, sink).then(
        (error) => error && call.emit('error', error),
        () => call.emit('error', { code: status.UNAVAILABLE, details: 'redis unavailable' }),
      );
    },
  });
  const credentials = tls ? ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false) : ServerCredentials.createInsecure();
  port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (error, p) => (error ? reject(error) : resolve(p))));
} else {
  const http = tls ? createHttpsServer(tls) : createHttpServer();
  const wss = new WebSocketServer({ server: http, path: '/v1/ws', perMessageDeflate: false, handleProtocols: (offered) => (offered.has('edgegateway.v1') ? 'edgegateway.v1' : false) });
  wss.on('connection', (ws) => {
    const sinks = new Set();
    ws.on('message', (data) => {
      if (data[0] !== 0x02 || data.length < 5) return;
      const callId = data.readUInt32BE(1);
      let request;
      try {
        request = SubscribeEventsRequest.decode(data.subarray(5));
      } catch {
        ws.close(1002);
        return;
      }
      const sink = {
        deviceSessionId: request.deviceSessionId,
        write: (bytes) => {
          const frame = Buffer.allocUnsafe(5 + bytes.length);
          frame[0] = 0x82;
          frame.writeUInt32BE(callId, 1);
          bytes.copy(frame, 5);
          ws.send(frame);
        },
      };
      sinks.add(sink);
      subscribe(request, sink).then(
        (error) => {
          if (error) {
            const text = Buffer.from(error.details);
            ws.send(Buffer.concat([Buffer.from([0x83, callId >>> 24, (callId >>> 16) & 0xff, (callId >>> 8) & 0xff, callId & 0xff, error.code]), text]));
          }
        },
        () => undefined,
      );
    });
    ws.on('close', () => {
      for (const sink of sinks) {
        sink.gone = true;
        sink.remove?.();
      }
    });
    ws.on('error', () => undefined);
  });
  port = await new Promise((resolve) => http.listen(0, '127.0.0.1', () => resolve(http.address().port)));
}
process.stdout.write(`${JSON.stringify({ port })}\n`);
void readClientEvents(reader, onEvent);
process.on('SIGTERM', () => process.exit(0));
