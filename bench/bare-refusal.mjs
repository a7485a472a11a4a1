// The floor of the rate-limit benchmark's flood: a bare grpc-js server that answers every
// `edgegateway.v1.EdgeGateway/ExecuteCommand` the way the gateway answers a rate-limited one
// (RESOURCE_EXHAUSTED `rate limit exceeded` with the `retry-after-ms` and
// `grpc-retry-pushback-ms` trailers), after decoding the request as the gateway's service does,
// and does nothing else (no checks, no metrics, no log). What a refusal costs over grpc-js.
// Usage: node bench/bare-refusal.mjs; prints `{"port":N}`.
// BARE_REFUSAL_INTERCEPTOR=1: with a pass-through server interceptor shaped like the gateway's
// connection tracking (one ServerInterceptingCall per call listening to the request metadata and
// the cancel, its sendStatus overridden), to measure what that layer costs a call on its own.
import { Metadata, Server, ServerCredentials, ServerInterceptingCall, status } from '@grpc/grpc-js';
import { EdgeGatewayService } from '@edge-gateway/adapters-grpc/generated';

class PassThroughCall extends ServerInterceptingCall {
  constructor(next) {
    super(next, {
      start: (startNext) => startNext({ onReceiveMetadata: (metadata, nextMetadata) => nextMetadata(metadata), onCancel: () => {} }),
    });
  }
  sendStatus(s) {
    super.sendStatus(s);
  }
}

const interceptors = process.env.BARE_REFUSAL_INTERCEPTOR === '1' ? [(_method, call) => new PassThroughCall(call)] : [];
const server = new Server({ interceptors });
server.addService(EdgeGatewayService, {
  executeCommand(call, callback) {
    const metadata = new Metadata();
    metadata.set('retry-after-ms', '167');
    metadata.set('grpc-retry-pushback-ms', '167');
    callback({ code: status.RESOURCE_EXHAUSTED, details: 'rate limit exceeded', metadata });
  },
  subscribeEvents(call) {
    call.emit('error', { code: status.UNIMPLEMENTED, details: 'not served' });
  },
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
