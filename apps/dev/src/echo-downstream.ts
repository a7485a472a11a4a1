import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { CommandHandlerService, type DownstreamCommand, type DownstreamResult } from '@edge-gateway/adapters-grpc/generated';

/** A running in-process business service. */
export interface EchoDownstreamHandle {
  /** `127.0.0.1:<port>`, for `GATEWAY_DOWNSTREAM_ROUTES`. */
  readonly address: string;
  stop(): Promise<void>;
}

/**
 * Starts the development `echo.` business service: a real `CommandHandler` gRPC server on
 * 127.0.0.1 (any free port) that answers every command with result code `ok` and the
 * request payload.
 */
export async function startEchoDownstream(): Promise<EchoDownstreamHandle> {
  const server = new Server();
  server.addService(CommandHandlerService, {
    execute: (call: ServerUnaryCall<DownstreamCommand, DownstreamResult>, callback: sendUnaryData<DownstreamResult>) => {
      callback(null, { resultCode: 'ok', payload: call.request.payload });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    address: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
