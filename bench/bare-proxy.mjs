// The baseline of the commands benchmark: a bare grpc-js forwarding proxy. It serves
// `edgegateway.v1.EdgeGateway/ExecuteCommand`, does no checks at all (no freshness, session,
// signature or replay check, no logging, no metrics), forwards the command to the echo
// downstream with the client's deadline and answers with an UNSIGNED response.
// Usage: node bench/bare-proxy.mjs <downstream host:port>; prints `{"port":N}`.
import { Server, ServerCredentials, credentials, status } from '@grpc/grpc-js';
import { CommandHandlerClient, EdgeGatewayService } from '@edge-gateway/adapters-grpc/generated';

const target = process.argv[2];
if (!target) throw new Error('usage: bare-proxy.mjs <downstream host:port>');
const downstream = new CommandHandlerClient(target, credentials.createInsecure());
const server = new Server();
server.addService(EdgeGatewayService, {
  executeCommand(call, callback) {
    const request = call.request;
    const deadline = call.getDeadline();
    downstream.execute(
      { messageType: request.messageType, userId: '', deviceSessionId: request.deviceSessionId, requestId: request.requestId, payload: request.payload },
      { deadline: Number.isFinite(Number(deadline)) ? deadline : Date.now() + 10_000 },
      (error, result) => {
        if (error) {
          callback({ code: error.code ?? status.INTERNAL, details: error.details ?? 'downstream failed' });
          return;
        }
        callback(null, { requestId: request.requestId, resultCode: result.resultCode, payload: result.payload, timestampMs: Date.now(), signerKeyId: '', signature: Buffer.alloc(0) });
      },
    );
  },
  subscribeEvents(call) {
    call.emit('error', { code: status.UNIMPLEMENTED, details: 'not proxied' });
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
