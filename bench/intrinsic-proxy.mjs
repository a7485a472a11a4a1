// The floor of the commands benchmarks: a grpc-js proxy like bench/bare-proxy.mjs that does
// exactly the work no gateway can skip, and nothing else (no logs, no metrics, no spans):
//  - the session from an in-process map (filled by one HGETALL per session, on first use; the
//    parsed public key object is cached with it), refused when unknown or revoked;
//  - Ed25519 verify of the request's canonical bytes (SPEC §3) with that cached key object;
//  - one `SET P replay:<ds>/<req> 1 NX PX <2 × 5 min>` on the same Redis through node-redis;
//  - the downstream call with the client's deadline (10 s when it set none);
//  - Ed25519 sign of the canonical result, answered as a signed ExecuteCommandResponse.
// Verify and sign run inline on the event loop, as a straightforward implementation would.
// node-redis runs without its default 5 s command timeout (an AbortSignal.timeout per command):
// the floor is the cheapest correct implementation, and on a loaded machine that timeout made
// this baseline fail calls.
// Usage: node bench/intrinsic-proxy.mjs <downstream host:port> <redis port> <redis password>
//        <signer key PEM path>; prints `{"port":N}`.
import { readFileSync } from 'node:fs';
import { verify } from 'node:crypto';
import { Server, ServerCredentials, credentials, status } from '@grpc/grpc-js';
import { createClient } from 'redis';
import { Ed25519ResponseSigner, commandRequestBytes, commandResultBytes } from '@edge-gateway/core';
import { CommandHandlerClient, EdgeGatewayService } from '@edge-gateway/adapters-grpc/generated';
import { connectClient, sessionLookup } from './floor-lib.mjs';

const [target, redisPort, password, keyPath] = process.argv.slice(2);
if (!keyPath) throw new Error('usage: intrinsic-proxy.mjs <downstream host:port> <redis port> <redis password> <signer key PEM>');
const PREFIX = 'gateway:';
const REPLAY_TTL_MS = 2 * 5 * 60_000;

const signer = Ed25519ResponseSigner.fromPem(readFileSync(keyPath));
const redis = await connectClient(createClient({ socket: { host: '127.0.0.1', port: Number(redisPort) }, password, commandOptions: { timeout: 0 } }));
const downstream = new CommandHandlerClient(target, credentials.createInsecure());

const { session, sessions } = sessionLookup(redis, PREFIX);

const fail = (callback, code, details) => callback({ code, details });

const server = new Server();
server.addService(EdgeGatewayService, {
  executeCommand(call, callback) {
    // A Redis failure (node-redis's own 5 s timeout on an overloaded machine) fails the call.
    execute(call, callback).catch(() => fail(callback, status.UNAVAILABLE, 'redis unavailable'));
  },
  subscribeEvents(call) {
    call.emit('error', { code: status.UNIMPLEMENTED, details: 'not proxied' });
  },
});

async function execute(call, callback) {
  const request = call.request;
  let s = sessions.get(request.deviceSessionId);
  if (s === undefined || s instanceof Promise) s = await session(request.deviceSessionId);
  if (s === null) return fail(callback, status.UNAUTHENTICATED, 'unknown device session');
  if (s.revoked) return fail(callback, status.FAILED_PRECONDITION, 'device session is revoked');
  if (request.signature.length !== 64 || !verify(null, commandRequestBytes(request), s.publicKey, request.signature)) {
    return fail(callback, status.UNAUTHENTICATED, 'invalid request signature');
  }
  const reserved = await redis.set(`${PREFIX}replay:${request.deviceSessionId}/${request.requestId}`, '1', { condition: 'NX', expiration: { type: 'PX', value: REPLAY_TTL_MS } });
  if (reserved === null) return fail(callback, status.ALREADY_EXISTS, 'request_id was already used');
  const deadline = call.getDeadline();
  downstream.execute(
    { messageType: request.messageType, userId: s.userId, deviceSessionId: request.deviceSessionId, requestId: request.requestId, payload: request.payload },
    { deadline: Number.isFinite(Number(deadline)) ? deadline : Date.now() + 10_000 },
    (error, result) => {
      if (error) return fail(callback, error.code ?? status.INTERNAL, error.details ?? 'downstream failed');
      const fields = { requestId: request.requestId, resultCode: result.resultCode, timestampMs: Date.now(), payload: result.payload };
      callback(null, { ...fields, signerKeyId: signer.keyId, signature: signer.sign(commandResultBytes(fields)) });
    },
  );
}
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
