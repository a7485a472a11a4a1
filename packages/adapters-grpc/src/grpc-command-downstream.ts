import { Metadata, credentials, status as GrpcStatus, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { context, propagation, trace } from '@opentelemetry/api';
import {
  GatewayError,
  GatewayErrorCode,
  type CommandDownstream,
  type DownstreamCallContext,
  type DownstreamCommand,
  type DownstreamResult,
} from '@edge-gateway/core';
import { CommandHandlerClient } from './generated/edgegateway/downstream/v1/command_handler.js';
import { fromDownstreamCommand, toDownstreamResult } from './message-mapping.js';
import { metadataSetter } from './trace-context.js';

export interface GrpcCommandDownstreamOptions {
  /** Default: insecure (plaintext inside the cluster). */
  readonly credentials?: ChannelCredentials;
  readonly channelOptions?: ChannelOptions;
}

/**
 * A business service reached over gRPC (`edgegateway.downstream.v1.CommandHandler`), one
 * channel per target. Propagates the deadline and the W3C trace context; maps
 * `UNAVAILABLE` / `DEADLINE_EXCEEDED` to pass-through `GatewayError`s (SPEC §4).
 */
export class GrpcCommandDownstream implements CommandDownstream {
  private readonly client: CommandHandlerClient;

  /** @param target `host:port` of the business service. */
  constructor(
    readonly target: string,
    options: GrpcCommandDownstreamOptions = {},
  ) {
    this.client = new CommandHandlerClient(target, options.credentials ?? credentials.createInsecure(), options.channelOptions);
  }

  execute(command: DownstreamCommand, callContext: DownstreamCallContext): Promise<DownstreamResult> {
    const metadata = new Metadata();
    const traceContext = callContext.traceContext ?? context.active();
    // Nothing to propagate (no span context, no baggage: the usual case without a tracing SDK
    // and without a client traceparent): skip the propagator.
    if (trace.getSpanContext(traceContext) !== undefined || propagation.getBaggage(traceContext) !== undefined) {
      propagation.inject(traceContext, metadata, metadataSetter);
    }
    // The transport's cancellation when it reports one (no AbortSignal made), else the signal.
    const cancellation = callContext.cancellation;
    const signal = cancellation === undefined ? callContext.signal : undefined;
    return new Promise<DownstreamResult>((resolve, reject) => {
      if (cancellation?.cancelled === true || signal?.aborted === true) {
        reject(new Error('downstream call aborted before it started'));
        return;
      }
      let stopListening: (() => void) | undefined;
      const call = this.client.execute(
        fromDownstreamCommand(command),
        metadata,
        { deadline: new Date(callContext.deadlineMs) },
        (error, result) => {
          stopListening?.();
          if (error !== null) reject(mapDownstreamError(error));
          else resolve(toDownstreamResult(result));
        },
      );
      const onAbort = (): void => call.cancel();
      if (cancellation !== undefined) {
        stopListening = cancellation.onCancel(onAbort);
      } else if (signal !== undefined) {
        signal.addEventListener('abort', onAbort, { once: true });
        stopListening = () => signal.removeEventListener('abort', onAbort);
      }
    });
  }

  /** Closes the channel (calls in flight end `CANCELLED`). */
  async close(): Promise<void> {
    this.client.close();
  }

  /** `await using downstream = new GrpcCommandDownstream(…)`: {@link GrpcCommandDownstream.close} at scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * `UNAVAILABLE` → `GatewayError` unavailable, `DEADLINE_EXCEEDED` → deadline_exceeded (both
 * keep the downstream's message); anything else stays a plain `Error` for the core to turn
 * into `INTERNAL` `downstream command failed`.
 */
export function mapDownstreamError(error: ServiceError): Error {
  if (error.code === GrpcStatus.UNAVAILABLE) return GatewayError.unavailable(error.details, error);
  if (error.code === GrpcStatus.DEADLINE_EXCEEDED) {
    return new GatewayError(GatewayErrorCode.DeadlineExceeded, error.details, { cause: error });
  }
  return new Error(`downstream returned ${GrpcStatus[error.code] ?? error.code}: ${error.details}`, { cause: error });
}
