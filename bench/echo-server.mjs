// A real downstream business service (`edgegateway.downstream.v1.CommandHandler`) that echoes
// the payload with result code `ok`. Runs as its own process so it does not share the load
// generator's event loop; prints `{"port":N}` on its first stdout line.
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { CommandHandlerService } from '@edge-gateway/adapters-grpc/generated';

const server = new Server();
server.addService(CommandHandlerService, {
  execute(call, callback) {
    callback(null, { resultCode: 'ok', payload: call.request.payload });
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
