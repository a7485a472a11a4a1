import { Metadata, credentials as grpcCredentials, status as GrpcStatus, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import type { DeviceTransport, ExecuteCommandRequest, ExecuteCommandResponse, ReceivedEvent, SubscribeEventsRequest, TransportCallOptions, TransportStreamOptions } from '@edge-gateway/protocol';
import { EdgeGatewayGrpcClient } from './edge-gateway-stub.js';
import { GatewayStatusError, toClientError } from './errors.js';
import { ServerStreamReader } from './stream-reader.js';

/**
 * Channel defaults for devices: grpc-js's own reconnect backoff (1 s growing to 120 s) would
 * otherwise delay `subscribe({ autoReconnect: true })` well beyond its own backoff.
 */
export const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 10_000,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 10_000,
};

/** Options of {@link GrpcDeviceTransport}. */
export interface GrpcDeviceTransportOptions {
  /** Gateway gRPC address, `host:port`. */
  readonly address: string;
  /** Default: insecure (plaintext). */
  readonly credentials?: ChannelCredentials;
  /** grpc-js channel options, merged over `DEFAULT_CHANNEL_OPTIONS`. */
  readonly channelOptions?: ChannelOptions;
}

/**
 * The gRPC framing of a device client (SPEC §2): one grpc-js channel; a command is one unary
 * `ExecuteCommand` call (the time left as its deadline), a push stream one `SubscribeEvents`
 * call read with backpressure. Signing, verification, resume and reconnects are the
 * `DeviceClient`'s (`@edge-gateway/protocol`); `GatewayClient` is that client over this transport.
 */
export class GrpcDeviceTransport implements DeviceTransport {
  private readonly client: EdgeGatewayGrpcClient;

  constructor(options: GrpcDeviceTransportOptions) {
    this.client = new EdgeGatewayGrpcClient(options.address, options.credentials ?? grpcCredentials.createInsecure(), {
      ...DEFAULT_CHANNEL_OPTIONS,
      ...options.channelOptions,
    });
  }

  /** One unary `ExecuteCommand` call; `timeoutMs` becomes its gRPC deadline, an abort cancels it. */
  execute(request: ExecuteCommandRequest, options: TransportCallOptions): Promise<ExecuteCommandResponse> {
    const signal = options.signal;
    return new Promise<ExecuteCommandResponse>((resolve, reject) => {
      const call = this.client.executeCommand(request, new Metadata(), options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs }, (error, result) => {
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(toClientError(error));
        else resolve(result);
      });
      const onAbort = (): void => call.cancel();
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** One `SubscribeEvents` call, read with backpressure; leaving the iteration cancels it. */
  async *subscribe(request: SubscribeEventsRequest, options: TransportStreamOptions): AsyncGenerator<ReceivedEvent> {
    const reader = new ServerStreamReader(this.client.subscribeEvents(request));
    const onAbort = (): void => reader.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        let event;
        try {
          event = await reader.next();
        } catch (error) {
          if (options.signal?.aborted && error instanceof GatewayStatusError && error.code === GrpcStatus.CANCELLED) return;
          throw error;
        }
        if (event === undefined) return;
        yield { event };
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      reader.cancel();
    }
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}
