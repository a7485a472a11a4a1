import { isSpanContextValid, trace, type Context } from '@opentelemetry/api';
import type { CommandRequest, CommandResult, DownstreamCommand, DownstreamResult } from '../domain.js';
import { GatewayError, GatewayErrorCode, GatewayMessages } from '../errors.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Clock } from '../ports/clock.port.js';
import { abortSignalOf, type Cancellation } from '../ports/cancellation.port.js';
import type { CommandRouter, DownstreamCallContext } from '../ports/command-router.port.js';
import { noopLogger, type LogFields, type Logger } from '../ports/logger.port.js';
import type { ReplayStore } from '../ports/replay-store.port.js';
import { signWith, type ResponseSigner } from '../ports/response-signer.port.js';
import type { SessionCache } from '../session/session-cache.js';
import { commandResultBytes } from '../signing/canonical.js';
import { verifyCommandRequest, verifyCommandRequestAsync } from '../signing/verifier.js';
import { addClientField, boundedText, clientField } from '../observability/log-safe.js';
import { RequestLogLimiter, UNNAMED_TRANSPORT, statusNameOf } from '../observability/request-log-limiter.js';
import { isValidId, isValidType, validateCommandRequest } from '../validation.js';
import type { RateLimits } from '../rate-limit/rate-limits.js';
import { processLoopLoad } from './loop-load.js';
import { activeSession, checkFreshness, pipelineDeps, recheckNotRevoked, reserveRequest, type PipelineDeps } from './pipeline.js';

export { DEFAULT_FRESHNESS_WINDOW_MS } from './pipeline.js';

export interface CommandServiceOptions {
  readonly sessions: SessionCache;
  readonly replay: ReplayStore;
  readonly router: CommandRouter;
  readonly signer: ResponseSigner;
  /** `GATEWAY_REQUEST_FRESHNESS_WINDOW` in ms (default 5 minutes). */
  readonly freshnessWindowMs?: number;
  /** `GATEWAY_MAX_PAYLOAD_BYTES` (default 1 MiB). */
  readonly maxPayloadBytes?: number;
  /** `GATEWAY_DOWNSTREAM_TIMEOUT` in ms, used when the caller set no deadline (default 10 s). */
  readonly downstreamTimeoutMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: GatewayMetrics;
  /**
   * Rate limits (SPEC §4 step 7), checked after the signature and the route, before the replay
   * reservation; shared with the subscription service. Default: none.
   */
  readonly rateLimits?: RateLimits;
  /**
   * Bounds the lines a failed command writes (SPEC §8.5); default: a limiter of its own on
   * `logger` (`createGatewayCore` shares one across the core and its transports).
   */
  readonly requestLog?: RequestLogLimiter;
  /**
   * Verify the request and sign the result in libuv's threadpool (node:crypto callbacks, and
   * `ResponseSigner.signAsync` when the signer has it) instead of on the event loop, under the
   * load rules below. Same checks, same order, same bytes. Default **false**: each hand-off
   * costs CPU, and where the process has no idle core to hand to (a 2-CPU host shared with its
   * neighbours, a container limited to about one CPU) it adds latency instead of capacity
   * (measured at 800 commands/s on 2 CPUs: +30 µs of CPU per command and 1.5–1.9× the p99 of
   * inline crypto; the closed loop gained ~1.5 %). Turn it on where the gateway has cores to
   * spare (`GATEWAY_COMMAND_CRYPTO_THREADPOOL=true`).
   */
  readonly asyncCrypto?: boolean;
  /**
   * With `asyncCrypto`, a command's verify and sign go to the threadpool only while at least
   * this many commands are in flight (counting itself); below that they run inline. Each
   * hand-off costs CPU (about 35 µs measured on 2 CPUs, where a verify costs 60–180 µs), which
   * only pays while the event loop is the bottleneck. 0 or 1: always offload. Default
   * {@link DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT}.
   */
  readonly asyncCryptoMinInFlight?: number;
  /**
   * With `asyncCrypto`, the hand-off also needs the event loop to have been at least this busy
   * (utilization 0–1 over the last ~100 ms): many commands in flight on an event loop with
   * time to spare are served cheaper inline, and the threadpool only pays when the loop is
   * the bottleneck. 0: in-flight count only. Default
   * {@link DEFAULT_ASYNC_CRYPTO_MIN_LOOP_UTILIZATION}.
   */
  readonly asyncCryptoMinLoopUtilization?: number;
  /** The event loop's recent utilization, 0–1 (default: sampled from `perf_hooks`; for tests). */
  readonly loopUtilization?: () => number;
}

export const DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT = 8;
export const DEFAULT_ASYNC_CRYPTO_MIN_LOOP_UTILIZATION = 0.9;

/** How far before the deadline a transport's deadline timer may fire (see `cutAtDeadline`). */
const DEADLINE_TIMER_SLACK_MS = 5;

/** Per-call context from the transport. */
export interface CallContext {
  /** The client's deadline (epoch ms), propagated to the downstream call. */
  readonly deadlineMs?: number;
  /** Aborted when the client cancels. */
  readonly signal?: AbortSignal;
  /**
   * The client cancelling, reported without an `AbortSignal` (see {@link Cancellation}); a
   * transport sets this or `signal`.
   */
  readonly cancellation?: Cancellation;
  /** The caller's OpenTelemetry context, handed to the downstream for propagation. */
  readonly traceContext?: Context;
  /**
   * The transport's name (`grpc`, `websocket`, an embedder's own), a constant: failure lines
   * are rate-bounded per transport and status code (SPEC §8.5).
   */
  readonly transport?: string;
}

const NO_CONTEXT: CallContext = Object.freeze({});

export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
export const DEFAULT_DOWNSTREAM_TIMEOUT_MS = 10_000;

/** ExecuteCommand: the pipeline of SPEC §4, in order, and the signed result. */
export class CommandService {
  private readonly deps: PipelineDeps;
  private readonly logger: Logger;
  private readonly requestLog: RequestLogLimiter;
  private readonly maxPayloadBytes: number;
  private readonly downstreamTimeoutMs: number;
  private readonly asyncCrypto: boolean;
  private readonly asyncCryptoMinInFlight: number;
  private readonly asyncCryptoMinLoopUtilization: number;
  private readonly loopUtilization: () => number;
  private readonly rateLimits: RateLimits | undefined;
  private inFlight = 0;
  private shuttingDown = false;

  constructor(private readonly options: CommandServiceOptions) {
    this.asyncCrypto = options.asyncCrypto ?? false;
    this.asyncCryptoMinInFlight = options.asyncCryptoMinInFlight ?? DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT;
    this.asyncCryptoMinLoopUtilization = options.asyncCryptoMinLoopUtilization ?? DEFAULT_ASYNC_CRYPTO_MIN_LOOP_UTILIZATION;
    if (options.loopUtilization !== undefined) {
      this.loopUtilization = options.loopUtilization;
    } else {
      const load = processLoopLoad();
      this.loopUtilization = () => load.utilization();
    }
    this.deps = pipelineDeps(options);
    this.rateLimits = options.rateLimits;
    this.logger = options.logger ?? noopLogger;
    this.requestLog = options.requestLog ?? new RequestLogLimiter({ logger: this.logger, metrics: options.metrics });
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.downstreamTimeoutMs = options.downstreamTimeoutMs ?? DEFAULT_DOWNSTREAM_TIMEOUT_MS;
  }

  /** From now on new calls fail `UNAVAILABLE` `gateway is shutting down`; in-flight calls finish. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  /** Commands between the start of their checks and their result. */
  get commandsInFlight(): number {
    return this.inFlight;
  }

  async execute(request: CommandRequest, context: CallContext = NO_CONTEXT): Promise<CommandResult> {
    const started = performance.now();
    let userId = '';
    let failedDownstream: { target: string; error: unknown } | undefined;
    this.inFlight += 1;
    try {
      if (this.shuttingDown) throw GatewayError.shuttingDown();
      validateCommandRequest(request, this.maxPayloadBytes);
      checkFreshness(this.deps, request.timestampMs);
      // Nobody waits for a call whose deadline passed before its checks started (an overloaded
      // process reaching it late): no session lookup, no verify, no reservation for it.
      this.checkDeadline(context);
      // A cached session is used without an await (the usual case); `lookup` otherwise.
      const { session, publicKey } = activeSession(this.deps.sessions.peek(request.deviceSessionId) ?? (await this.deps.sessions.lookup(request.deviceSessionId)));
      userId = session.userId;
      const limits = this.rateLimits;
      const subject = limits === undefined ? undefined : { deviceSessionId: request.deviceSessionId, userId: session.userId };
      const buckets = limits === undefined || subject === undefined ? undefined : limits.commandBuckets(subject, request.messageType);
      // A device known to be over its limit is refused before its signature is checked (see
      // refuseKnown), and without a throw: the same rejection, and the catch below has nothing to
      // do for a rate-limited request (no log line, the limits logged it); a flood's refusal
      // no longer pays for a throw and a rethrow.
      const refusal = buckets === undefined || subject === undefined ? undefined : limits?.knownRefusal(buckets, subject);
      if (refusal !== undefined) return Promise.reject(refusal);
      const verified = this.offload() ? await verifyCommandRequestAsync(publicKey, request) : verifyCommandRequest(publicKey, request);
      if (!verified) throw GatewayError.unauthenticated(GatewayMessages.invalidSignature);
      const downstream = this.options.router.route(request.messageType);
      if (downstream === undefined) {
        throw new GatewayError(GatewayErrorCode.Unimplemented, GatewayMessages.noRoute(request.messageType));
      }
      // A command whose deadline passed never consumes its request_id (nor its budget): nobody waits for it.
      this.checkDeadline(context);
      if (limits === undefined || subject === undefined || buckets === undefined) {
        await reserveRequest(this.deps, request.deviceSessionId, request.requestId);
      } else {
        // Step 7 then 8: a limited request leaves no reservation, so its request_id may be sent again.
        await limits.admit(this.deps, buckets, subject, request.requestId);
      }
      recheckNotRevoked(this.deps, request.deviceSessionId);
      if (this.deadlinePassed(context)) {
        // It passed during the reservation: give the request_id back, the command never ran.
        await this.release(request, session.userId);
        this.checkDeadline(context);
      }

      const deadlineMs = context.deadlineMs ?? this.deps.clock.now() + this.downstreamTimeoutMs;
      const callContext: DownstreamCallContext =
        context.cancellation === undefined ? plainCallContext(deadlineMs, context) : new CancellableCallContext(deadlineMs, context.cancellation, context.traceContext);
      const command: DownstreamCommand = {
        messageType: request.messageType,
        userId: session.userId,
        deviceSessionId: request.deviceSessionId,
        requestId: request.requestId,
        payload: request.payload,
      };
      let result: DownstreamResult;
      try {
        result = await downstream.execute(command, callContext);
      } catch (error) {
        const failure = this.downstreamError(error, context);
        if (failure.code === GatewayErrorCode.Internal) failedDownstream = { target: downstream.target, error };
        throw failure;
      }
      const response = await this.sign(request.requestId, result);
      this.logCall(request, userId, 'ok', started, context);
      return response;
    } catch (error) {
      const failure = error instanceof GatewayError ? error : GatewayError.internal('internal error', error);
      // A flood of bad requests must not cost more log than it sends: a few lines per second
      // per (transport, code), the rest counted (SPEC §8.5). A rate-limited call is logged by
      // the limits, once per session and rule per 10 s.
      if (failure.retryAfterMs === undefined && this.requestLog.allow(context.transport ?? UNNAMED_TRANSPORT, statusNameOf(failure.code))) {
        if (!(error instanceof GatewayError)) {
          this.logger.error('command failed unexpectedly', { ...clientField('request_id', request.requestId, isValidId(request.requestId)), error: describe(error) });
        }
        if (failedDownstream !== undefined) {
          this.logger.warn('downstream command failed', {
            target: failedDownstream.target,
            message_type: request.messageType,
            request_id: request.requestId,
            error: describe(failedDownstream.error),
          });
        }
        this.logCall(request, userId, failure.code, started, context, failure.message);
      }
      throw failure;
    } finally {
      this.inFlight -= 1;
    }
  }

  /** Whether this command's crypto goes to the threadpool (decided per step, at that moment). */
  private offload(): boolean {
    return (
      this.asyncCrypto &&
      this.inFlight >= this.asyncCryptoMinInFlight &&
      (this.asyncCryptoMinLoopUtilization <= 0 || this.loopUtilization() >= this.asyncCryptoMinLoopUtilization)
    );
  }

  private async sign(requestId: string, result: DownstreamResult): Promise<CommandResult> {
    const timestampMs = this.deps.clock.now();
    const { signer } = this.options;
    const bytes = commandResultBytes({ requestId, resultCode: result.resultCode, timestampMs, payload: result.payload });
    const signerKeyId = signer.keyId;
    const signature = this.offload() ? await signWith(signer, bytes) : signer.sign(bytes);
    return { requestId, resultCode: result.resultCode, timestampMs, payload: result.payload, signerKeyId, signature };
  }

  /** The client's answer for a failed downstream call (a failure of the downstream itself is `INTERNAL`, its details logged by the caller). */
  private downstreamError(error: unknown, context: CallContext): GatewayError {
    // The call was cut by the client's own deadline (propagated to the downstream, or the
    // transport cancelled it): the client's answer is that deadline, whichever timer fired first,
    // and never the downstream client library's diagnostics (grpc-js adds the downstream's
    // address to its own "Deadline exceeded after …").
    if (this.deadlinePassed(context) || this.cutAtDeadline(context)) return GatewayError.deadlineExceeded();
    if (
      error instanceof GatewayError &&
      (error.code === GatewayErrorCode.Unavailable || error.code === GatewayErrorCode.DeadlineExceeded)
    ) {
      return error;
    }
    return GatewayError.internal(GatewayMessages.downstreamFailed, error);
  }

  /**
   * The transport cancelled the call at its deadline, its timer having fired a moment before
   * this process's clock reached it: timers run on the event loop's millisecond clock, cached per
   * loop turn, so a transport's deadline timer (grpc-js's, the WebSocket adapter's) can run up
   * to a few ms before `Date.now()` passes the deadline. Without this, such a call was logged
   * `internal` (the downstream call it aborted failed) about one time in five.
   */
  private cutAtDeadline(context: CallContext): boolean {
    const cancelled = context.cancellation?.cancelled === true || context.signal?.aborted === true;
    return cancelled && context.deadlineMs !== undefined && this.deps.clock.now() >= context.deadlineMs - DEADLINE_TIMER_SLACK_MS;
  }

  private deadlinePassed(context: CallContext): boolean {
    return context.deadlineMs !== undefined && this.deps.clock.now() >= context.deadlineMs;
  }

  private checkDeadline(context: CallContext): void {
    if (this.deadlinePassed(context)) throw GatewayError.deadlineExceeded();
  }

  /** Best effort: a failed release leaves the reservation to expire (fail closed). */
  private async release(request: CommandRequest, userId: string): Promise<void> {
    try {
      if (this.rateLimits === undefined) await this.deps.replay.release?.(request.deviceSessionId, request.requestId);
      else await this.rateLimits.release(this.deps.replay, { deviceSessionId: request.deviceSessionId, userId }, request.requestId);
    } catch (error) {
      this.logger.warn('replay reservation release failed', { request_id: request.requestId, error: describe(error) });
    }
  }

  private logCall(request: CommandRequest, userId: string, status: string, started: number, context: CallContext, reason?: string): void {
    const fields: LogFields = {};
    const traceId = traceIdOf(context.traceContext);
    if (traceId !== undefined) fields['trace_id'] = traceId;
    // Client strings that broke the field rules are logged as a preview plus their length.
    addClientField(fields, 'device_session_id', request.deviceSessionId, isValidId(request.deviceSessionId));
    fields['user_id'] = userId;
    addClientField(fields, 'message_type', request.messageType, isValidType(request.messageType));
    addClientField(fields, 'request_id', request.requestId, isValidId(request.requestId));
    fields['status'] = status;
    fields['duration_ms'] = Math.round((performance.now() - started) * 1000) / 1000;
    if (reason !== undefined) fields['reason'] = boundedText(reason);
    this.logger.info('command', fields);
  }
}

/** The downstream's context for a transport that reports cancellation with an `AbortSignal` (or not at all). */
function plainCallContext(deadlineMs: number, context: CallContext): DownstreamCallContext {
  const callContext: { deadlineMs: number; signal?: AbortSignal; traceContext?: Context } = { deadlineMs };
  if (context.signal !== undefined) callContext.signal = context.signal;
  if (context.traceContext !== undefined) callContext.traceContext = context.traceContext;
  return callContext;
}

/** The downstream's context for a transport that reports a {@link Cancellation}: `signal` only made when read. */
class CancellableCallContext implements DownstreamCallContext {
  private abortSignal: AbortSignal | undefined;

  constructor(
    readonly deadlineMs: number,
    readonly cancellation: Cancellation,
    readonly traceContext: Context | undefined,
  ) {}

  get signal(): AbortSignal {
    this.abortSignal ??= abortSignalOf(this.cancellation);
    return this.abortSignal;
  }
}

/** The trace id of the caller's context, when it has a valid one (a client `traceparent`). */
function traceIdOf(context: Context | undefined): string | undefined {
  if (context === undefined) return undefined;
  const spanContext = trace.getSpanContext(context);
  return spanContext !== undefined && isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}

/** A log-safe description of an error: class and message (bounded), never payloads. */
export function describe(error: unknown): string {
  return boundedText(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}
