import {
  status as GrpcStatus,
  type Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Context, type Span } from '@opentelemetry/api';
import {
  CancellationSource,
  GatewayError,
  GatewayErrorCode,
  GatewayMetrics,
  describeError,
  noopLogger,
  tracerProviderInstalled,
  type GatewayCore,
  type GatewayEvent as CoreGatewayEvent,
  type Logger,
  type PushSink,
} from '@edge-gateway/core';
import {
  type EdgeGatewayServer,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type GatewayEvent,
  type SubscribeEventsRequest,
} from './generated/edgegateway/v1/edge_gateway.js';
import { wireGatewayEvent } from './event-encoding.js';
import { fromCommandResult, toCommandRequest, toSubscribeRequest } from './message-mapping.js';
import { callStatusOf, grpcStatusName, type GatewayStatus } from './status-mapping.js';
import { isMalformedMessage } from './request-decoding.js';
import { metadataGetter } from './trace-context.js';
import { trackedCallOf } from './connection-tracking.js';

/** What the EdgeGateway service implementation needs. */
export interface EdgeGatewayServiceOptions {
  /** The assembled core (`createGatewayCore`). */
  readonly core: Pick<GatewayCore, 'execute' | 'openStream'>;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

/** Metric label `method`. */
export type GrpcMethodName = 'ExecuteCommand' | 'SubscribeEvents';

const SERVICE_NAME = 'edgegateway.v1.EdgeGateway';
const TRACEPARENT = 'traceparent';
const tracer = trace.getTracer('@edge-gateway/adapters-grpc');
const callThrough = <T>(fn: () => T): T => fn();

/**
 * The `edgegateway.v1.EdgeGateway` implementation: maps wire messages to the core services
 * and core errors to gRPC statuses (SPEC §4), and nothing else.
 */
export function createEdgeGatewayService(options: EdgeGatewayServiceOptions): EdgeGatewayServer {
  const calls = (options.metrics ?? new GatewayMetrics()).transportCalls('grpc');
  const logger = (options.logger ?? noopLogger).child({ component: 'grpc' });

  /**
   * Starts a server span continuing the caller's W3C trace context. Without a tracing SDK no
   * span is made (it would be a no-op): the caller's context, when it sent one, is still handed
   * on (downstream propagation, `trace_id` in the log line), and `run` calls straight through.
   */
  function startSpan(method: GrpcMethodName, metadata: Metadata): { span: Span | undefined; ctx: Context | undefined; run: <T>(fn: () => T) => T } {
    if (!tracerProviderInstalled()) {
      const ctx = metadata.get(TRACEPARENT).length === 0 ? undefined : propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
      return { span: undefined, ctx, run: callThrough };
    }
    const parent = propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
    const span = tracer.startSpan(`${SERVICE_NAME}/${method}`, { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.service': SERVICE_NAME, 'rpc.method': method } }, parent);
    const ctx = trace.setSpan(parent, span);
    return { span, ctx, run: (fn) => context.with(ctx, fn) };
  }

  function record(method: GrpcMethodName, code: GrpcStatus, started: number, span: Span | undefined): void {
    calls.record(method, grpcStatusName(code), (performance.now() - started) / 1000);
    if (span === undefined) return;
    span.setAttribute('rpc.grpc.status_code', code);
    if (code !== GrpcStatus.OK && code !== GrpcStatus.CANCELLED) span.setStatus({ code: SpanStatusCode.ERROR, message: grpcStatusName(code) });
    span.end();
  }

  function statusOf(error: unknown, method: GrpcMethodName): GatewayStatus {
    if (!(error instanceof GatewayError)) logger.error('unexpected error in grpc handler', { method, error: describeError(error) });
    return callStatusOf(error);
  }

  return {
    executeCommand(
      call: ServerUnaryCall<ExecuteCommandRequest, ExecuteCommandResponse>,
      callback: sendUnaryData<ExecuteCommandResponse>,
    ): void {
      const started = performance.now();
      const { span, ctx, run } = startSpan('ExecuteCommand', call.metadata);
      if (isMalformedMessage(call.request)) {
        const status = callStatusOf(GatewayError.malformedRequest());
        record('ExecuteCommand', status.code, started, span);
        callback(status);
        return;
      }
      const cancellation = new CancellationSource();
      // grpc-js reports 'cancelled' for every call once its stream closes, finished or not.
      let settled = false;
      call.once('cancelled', () => {
        if (!settled) cancellation.cancel();
      });
      const deadlineMs = deadlineOf(call.getDeadline());
      run(() =>
        options.core
          .execute(toCommandRequest(call.request), {
            transport: 'grpc',
            cancellation,
            ...(ctx === undefined ? {} : { traceContext: ctx }),
            ...(deadlineMs === undefined ? {} : { deadlineMs }),
          })
          .then(
            (result) => {
              settled = true;
              // The connection was closed for its cost while this ran: the client got that status.
              const closed = trackedCallOf(call.metadata)?.endedByConnection;
              record('ExecuteCommand', closed?.code ?? GrpcStatus.OK, started, span);
              if (closed === undefined) callback(null, fromCommandResult(result));
            },
            (error: unknown) => {
              settled = true;
              // A passed deadline also aborts the call: the core reports it as DEADLINE_EXCEEDED.
              const deadline = error instanceof GatewayError && error.code === GatewayErrorCode.DeadlineExceeded;
              const status =
                trackedCallOf(call.metadata)?.endedByConnection ??
                (cancellation.cancelled && !deadline ? { code: GrpcStatus.CANCELLED, details: 'cancelled' } : statusOf(error, 'ExecuteCommand'));
              record('ExecuteCommand', status.code, started, span);
              callback(status);
            },
          ),
      );
    },

    subscribeEvents(call: ServerWritableStream<SubscribeEventsRequest, GatewayEvent>): void {
      const started = performance.now();
      const { span, run } = startSpan('SubscribeEvents', call.metadata);
      let ended = false;

      const finish = (status: GatewayStatus | undefined, cancelled: boolean): void => {
        if (ended) return;
        ended = true;
        record('SubscribeEvents', status?.code ?? GrpcStatus.CANCELLED, started, span);
        if (cancelled) return;
        if (status === undefined) {
          call.end();
        } else {
          // grpc-js turns an 'error' event into the call's status, sent after the messages
          // already written (destroy() would drop the status entirely).
          call.emit('error', status.metadata === undefined ? { code: status.code, details: status.details } : { code: status.code, details: status.details, metadata: status.metadata });
        }
      };

      // The core remembers a drain or cancel that arrives before the checks finished, and
      // never writes after the end (see OpenedStream).
      const sink: PushSink = {
        // One wire message per event, shared by every stream it goes to (see event-encoding.ts).
        write: (event: CoreGatewayEvent) => call.write(wireGatewayEvent(event)),
        end: (error) => finish(error === undefined ? undefined : callStatusOf(error), false),
      };
      if (isMalformedMessage(call.request)) {
        finish(callStatusOf(GatewayError.malformedRequest()), false);
        return;
      }
      const stream = run(() => options.core.openStream(toSubscribeRequest(call.request), sink));
      call.on('drain', () => stream.resume());
      call.once('cancelled', () => {
        // The client went away (or its connection was closed for its cost): free the hub slot
        // now, nothing can be sent any more.
        stream.cancel();
        finish(trackedCallOf(call.metadata)?.endedByConnection, true);
      });
    },
  };
}

/** The client's deadline in epoch ms, or undefined when it set none. */
export function deadlineOf(deadline: Date | number): number | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : undefined;
}
