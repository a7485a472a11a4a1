// The baseline of the push benchmark: a bare grpc-js fan-out server. It serves
// `edgegateway.v1.EdgeGateway/SubscribeEvents` with no checks at all (no freshness, signature
// or replay check, no admission control, no per-stream bound, no logging, no metrics): one
// HGET of the session's user id (the least a router needs), an unsigned bootstrap event, then
// every client-events entry read with XREAD BLOCK, encoded once and written to each stream of
// its user, unsigned.
// Usage: node bench/bare-push.mjs <redis port> <redis password>; prints `{"port":N}`.
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { createClient } from 'redis';
import { EdgeGatewayService, GatewayEvent } from '@edge-gateway/adapters-grpc/generated';
import { connectClient } from './floor-lib.mjs';

const [redisPort, password] = process.argv.slice(2);
if (!redisPort) throw new Error('usage: bare-push.mjs <redis port> <redis password>');
const connect = connectClient;
const redis = await connect(createClient({ socket: { host: '127.0.0.1', port: Number(redisPort) }, password }));
const reader = await connect(redis.duplicate());

const byUser = new Map();
const encode = (event) => Buffer.from(GatewayEvent.encode({ signerKeyId: '', signature: Buffer.alloc(0), ...event }).finish());
// Events are written pre-encoded: the serializer passes the bytes through.
const service = { ...EdgeGatewayService, subscribeEvents: { ...EdgeGatewayService.subscribeEvents, responseSerialize: (bytes) => bytes } };

const server = new Server();
server.addService(service, {
  executeCommand(_call, callback) {
    callback({ code: status.UNIMPLEMENTED, details: 'not served' });
  },
  subscribeEvents(call) {
    const deviceSessionId = call.request.deviceSessionId;
    void redis.hGet(`gateway:session:${deviceSessionId}`, 'user_id').then((userId) => {
      if (!userId) {
        call.emit('error', { code: status.UNAUTHENTICATED, details: 'unknown device session' });
        return;
      }
      let streams = byUser.get(userId);
      if (streams === undefined) byUser.set(userId, (streams = new Set()));
      streams.add(call);
      call.on('cancelled', () => {
        streams.delete(call);
        if (streams.size === 0 && byUser.get(userId) === streams) byUser.delete(userId);
      });
      call.write(encode({ eventId: '', eventType: 'gateway.server_time', userId, deviceSessionId, timestampMs: Date.now(), payload: Buffer.alloc(0) }));
    });
  },
});

async function readLoop() {
  let lastId = '$';
  for (;;) {
    const reply = await reader.xRead({ key: 'gateway:client-events', id: lastId }, { BLOCK: 1000, COUNT: 1000 });
    for (const stream of reply ?? []) {
      for (const { id, message } of stream.messages) {
        lastId = id;
        const streams = byUser.get(message.user_id);
        if (streams === undefined) continue;
        const bytes = encode({
          eventId: id,
          eventType: message.event_type,
          userId: message.user_id,
          deviceSessionId: message.device_session_id ?? '',
          timestampMs: Number(id.slice(0, id.indexOf('-'))),
          payload: Buffer.from(message.payload_base64 ?? '', 'base64'),
        });
        for (const call of streams) call.write(bytes);
      }
    }
  }
}

server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  void readLoop();
});
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
