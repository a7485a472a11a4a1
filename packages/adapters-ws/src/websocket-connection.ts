import type { WebSocket } from 'ws';
import {
  CancellationSource,
  GatewayError,
  GatewayErrorCode,
  describeError,
  type ConnectionBudget,
  type ConnectionBudgets,
  type ConnectionCloseReason,
  type ConnectionControl,
  type PushSink,
  type GatewayCore,
  type GatewayEvent,
  type Logger,
  type OpenedStream,
  type TransportCallRecorder,
  type TransportConnectionGauge,
} from '@edge-gateway/core';
import {
  CloseCodes,
  FrameTypes,
  MAX_CALL_TIMEOUT_MS,
  StatusCodes,
  WireFormatError,
  decodeExecuteCommandRequest,
  decodeFrame,
  decodeSubscribeEventsRequest,
  decodeTimedExecute,
  encodeExecuteCommandResponse,
  encodeFrame,
  encodeStatus,
  encodeStatusWithTrailers,
  statusName,
  WEBSOCKET_SUBPROTOCOL_TRAILERS,
  type CallStatus,
  type ExecuteCommandRequest,
  type Frame,
} from '@edge-gateway/protocol';
import { encodeEventOnce } from './event-encoding.js';
import { toCallStatus } from './status-mapping.js';
import { CallTable } from './call-table.js';
import { ConnectionIdle, type IdleOwner } from './connection-idle.js';

/** The transport's instruments (`GatewayMetrics.transportCalls` / `transportConnections('websocket')`). */
export interface ConnectionMetrics {
  readonly calls: TransportCallRecorder;
  readonly connections: TransportConnectionGauge;
}

/** Per-connection settings (see `WebSocketServerOptions`). */
export interface ConnectionSettings {
  readonly maxCallsInFlight: number;
  readonly bufferHighWaterBytes: number;
  /** A complete frame must arrive this long after the upgrade, else close `1008` (`GATEWAY_HTTP_HEADERS_TIMEOUT`). */
  readonly firstFrameTimeoutMs: number;
  /** Without a call in flight for this long, close `1000` `idle` (`GATEWAY_WEBSOCKET_IDLE_TIMEOUT`). */
  readonly idleTimeoutMs: number;
  /** How long a connection closed for its cost may take to close before it is dropped. */
  readonly closeGraceMs: number;
}

type Method = 'ExecuteCommand' | 'SubscribeEvents';

/** The field rule of an `executeWithTimeout` frame's timeout (SPEC §2.2). */
export const TIMEOUT_RULE = `timeout_ms: must be 1-${MAX_CALL_TIMEOUT_MS} milliseconds`;

/**
 * What a call whose per-call deadline passed ends with: the status and message grpc-js's
 * server answers when a gRPC client's deadline passes, so both transports say the same.
 */
export const DEADLINE_EXCEEDED_STATUS: CallStatus = { code: StatusCodes.DEADLINE_EXCEEDED, details: 'Deadline exceeded' };

interface Call {
  readonly method: Method;
  /** `performance.now()` when its frame arrived. */
  readonly started: number;
  /** The client gave up (cancel frame or connection closed): nothing more is sent for it. */
  cancel(): void;
}

/**
 * One client connection: decodes frames, hands each call to the core and writes its answer.
 * Everything a push stream needs beyond writing (early drain, early cancel, one end) is the
 * core's `openStream`.
 *
 * Memory (issue 25, one connection per device): the connection is its own budget control and
 * idle owner, and the server routes the socket's `message` and `close` events to it through
 * listeners shared by every connection, so an idle connection holds no closure of its own.
 */
export class WebSocketConnection implements ConnectionControl, IdleOwner {
  private readonly calls = new CallTable<Call>();
  private closed = false;
  /** The client negotiated `edgegateway.v1.1`: statuses with trailers go as `0x84` frames. */
  private readonly trailers: boolean;
  /** The gateway is closing the connection: its frames are not read any more. */
  private closing = false;
  private readonly budget: ConnectionBudget;
  /** Called whenever the last call in flight finished (used while shutting down). */
  onIdle: (() => void) | undefined;
  private readonly idle: ConnectionIdle;

  /**
   * The owner hands the socket's events to {@link frameReceived} (`message`) and
   * {@link socketClosed} (`close`).
   */
  constructor(
    readonly socket: WebSocket,
    private readonly core: Pick<GatewayCore, 'execute' | 'openStream'>,
    readonly limits: ConnectionSettings,
    private readonly metrics: ConnectionMetrics,
    private readonly logger: Logger,
    budgets: ConnectionBudgets,
  ) {
    this.trailers = socket.protocol === WEBSOCKET_SUBPROTOCOL_TRAILERS;
    this.idle = new ConnectionIdle(limits, this);
    // The core decides when a connection costs too much (SPEC §2.3); this maps it onto ws
    // (pauseReading, resumeReading, close below).
    this.budget = budgets.open(this);
  }

  /** A complete message arrived on the socket. */
  frameReceived(data: Buffer, isBinary: boolean): void {
    this.onMessage(data, isBinary);
    this.idle.frame(this.calls.size);
  }

  /** {@link ConnectionControl}: stop reading new requests. */
  pauseReading(): void {
    this.socket.pause();
  }

  /** {@link ConnectionControl}: read again. */
  resumeReading(): void {
    this.socket.resume();
  }

  /** {@link ConnectionControl}: the budget closes the connection for its cost. */
  close(_reason: ConnectionCloseReason, message: string): void {
    this.closeForCost(message);
  }

  /** {@link IdleOwner}: no complete frame within the first-frame bound. */
  noFrameReceived(): void {
    this.closeWith(CloseCodes.policyViolation, 'no frame received');
  }

  /** {@link IdleOwner}: no call in flight for the idle timeout. */
  idleTimedOut(): void {
    this.closeWith(CloseCodes.normal, 'idle');
  }

  /** Calls in flight. */
  get inFlight(): number {
    return this.calls.size;
  }

  /** Not read because its answers did not drain (the keep-alive check leaves it to the drain timeout). */
  get readingPaused(): boolean {
    return this.budget.readingPaused;
  }

  /**
   * Closes the connection with `code` (answers already written are flushed first). Frames the
   * client still sends meanwhile are not read: nothing new runs on a connection being closed.
   */
  closeWith(code: number, reason: string): void {
    if (this.closed) return;
    this.closing = true;
    this.socket.close(code, reason);
  }

  /**
   * 1008 with the budget's reason after the answers already queued; a client that reads nothing
   * does not take the close frame either, so its connection is dropped after the grace.
   */
  private closeForCost(message: string): void {
    // The calls still running end RESOURCE_EXHAUSTED, as on gRPC: the client gets the close instead.
    for (const call of this.calls.values()) {
      call.cancel();
      this.count(call.method, StatusCodes.RESOURCE_EXHAUSTED, call.started);
    }
    this.calls.clear();
    this.onIdle?.();
    this.closeWith(CloseCodes.policyViolation, message);
    setTimeout(() => this.socket.terminate(), this.limits.closeGraceMs).unref();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed || this.closing) return;
    const started = performance.now();
    if (!isBinary) return this.closeWith(CloseCodes.unsupportedData, 'binary frames only');
    let frame: Frame;
    try {
      frame = decodeFrame(data);
    } catch {
      return this.closeWith(CloseCodes.protocolError, 'malformed frame');
    }
    if (frame.type === FrameTypes.cancel) {
      const call = this.calls.get(frame.callId);
      this.calls.delete(frame.callId);
      if (call === undefined) return;
      call.cancel();
      this.count(call.method, StatusCodes.CANCELLED, call.started);
      if (this.calls.size === 0) this.onIdle?.();
      return;
    }
    if (frame.type !== FrameTypes.execute && frame.type !== FrameTypes.executeWithTimeout && frame.type !== FrameTypes.subscribe) {
      return this.closeWith(CloseCodes.protocolError, 'unexpected frame type');
    }
    if (this.calls.has(frame.callId)) return this.closeWith(CloseCodes.protocolError, 'call id in use');
    if (this.calls.size >= this.limits.maxCallsInFlight) return this.closeWith(CloseCodes.policyViolation, 'too many calls in flight');
    const method: Method = frame.type === FrameTypes.subscribe ? 'SubscribeEvents' : 'ExecuteCommand';
    try {
      if (frame.type === FrameTypes.execute) this.execute(frame.callId, decodeExecuteCommandRequest(frame.body), started);
      else if (frame.type === FrameTypes.executeWithTimeout) this.executeWithTimeout(frame.callId, frame.body, started);
      else this.subscribe(frame.callId, frame.body, started);
    } catch (error) {
      if (!(error instanceof WireFormatError)) throw error;
      // As on gRPC: an undecodable message is this call's INVALID_ARGUMENT, counted like any other.
      this.sendStatus(method, frame.callId, toCallStatus(GatewayError.malformedRequest()), started);
    }
  }

  /**
   * SPEC §2.2: the frame is read in its byte order and the first failure answers. A body shorter
   * than its 4-byte `timeout_ms` is `malformed request message`; a `timeout_ms` out of range is the
   * timeout rule, whatever follows (the request is not decoded: a refused call costs no protobuf
   * decode); only then is the request decoded (`malformed request message` when it does not).
   */
  private executeWithTimeout(callId: number, body: Uint8Array, started: number): void {
    const timed = decodeTimedExecute(body);
    if (timed.timeoutMs < 1 || timed.timeoutMs > MAX_CALL_TIMEOUT_MS) {
      return this.sendStatus('ExecuteCommand', callId, toCallStatus(GatewayError.invalidArgument(TIMEOUT_RULE)), started);
    }
    this.execute(callId, decodeExecuteCommandRequest(timed.request), started, timed.timeoutMs);
  }

  /** A command; with `timeoutMs`, its deadline is its arrival plus that (the core and the downstream get it). */
  private execute(callId: number, request: ExecuteCommandRequest, started: number, timeoutMs?: number): void {
    const cancellation = new CancellationSource();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const call: Call = {
      method: 'ExecuteCommand',
      started,
      cancel: () => {
        clearTimeout(timer);
        cancellation.cancel();
      },
    };
    this.calls.set(callId, call);
    const deadlineMs = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    if (timeoutMs !== undefined) {
      // As grpc-js's server does at a call's deadline: answer at once, whatever the downstream
      // does, and cut the call (the core logs it; the downstream call is cancelled).
      timer = setTimeout(() => {
        if (!this.finish(callId, call)) return;
        cancellation.cancel();
        this.sendStatus('ExecuteCommand', callId, DEADLINE_EXCEEDED_STATUS, started);
      }, timeoutMs);
    }
    this.core.execute(request, { transport: 'websocket', cancellation, ...(deadlineMs === undefined ? {} : { deadlineMs }) }).then(
      (result) => {
        clearTimeout(timer);
        if (!this.finish(callId, call)) return;
        this.count('ExecuteCommand', StatusCodes.OK, started);
        this.send(encodeFrame(FrameTypes.result, callId, encodeExecuteCommandResponse(result)));
        this.budget.answered(StatusCodes.OK);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!this.finish(callId, call)) return;
        if (!(error instanceof GatewayError)) this.logger.error('unexpected error in websocket handler', { method: 'ExecuteCommand', error: describeError(error) });
        // The client's own deadline passed: the same answer whichever timer fired first (this
        // transport's, or the downstream call's with the same deadline, whose core message is
        // 'deadline exceeded'), as SPEC §2.2 promises: `4` `Deadline exceeded`.
        const clientDeadline = timeoutMs !== undefined && error instanceof GatewayError && error.code === GatewayErrorCode.DeadlineExceeded;
        this.sendStatus('ExecuteCommand', callId, clientDeadline ? DEADLINE_EXCEEDED_STATUS : toCallStatus(error), started);
      },
    );
  }

  private subscribe(callId: number, body: Uint8Array, started: number): void {
    const call = new StreamCall(this, callId, started);
    // The checks are asynchronous: nothing is written nor ended before the call is registered
    // below. `stream` is read only when the call is cancelled, after it was opened.
    call.stream = this.core.openStream(decodeSubscribeEventsRequest(body), call);
    this.calls.set(callId, call);
  }

  /**
   * Removes a call that is still ours to answer; false when it was cancelled (or timed out)
   * meanwhile. By identity: the client may already have reused the call id for a new call.
   */
  finish(callId: number, call: Call): boolean {
    const ours = this.calls.get(callId) === call && this.calls.delete(callId) && !this.closed;
    this.idle.calls(this.calls.size);
    if (this.calls.size === 0) this.onIdle?.();
    return ours;
  }

  sendStatus(method: Method, callId: number, status: CallStatus, started: number): void {
    this.count(method, status.code, started);
    // Old clients (edgegateway.v1) get code and message only.
    if (status.retryAfterMs !== undefined && this.trailers) this.send(encodeFrame(FrameTypes.statusWithTrailers, callId, encodeStatusWithTrailers(status)));
    else this.send(encodeFrame(FrameTypes.status, callId, encodeStatus(status)));
    // After the status: a refusal past the budget closes the connection behind this answer.
    this.budget.answered(status.code);
  }

  private count(method: Method, code: number, started: number): void {
    this.metrics.calls.record(method, statusName(code), (performance.now() - started) / 1000);
  }

  send(frame: Uint8Array, onWritten?: (error?: Error) => void): void {
    if (this.closed) return;
    // Every answer byte counts against the connection's bound until the socket took it.
    const size = frame.length;
    this.budget.queued(size);
    this.socket.send(frame, { binary: true }, (error) => {
      this.budget.written(size);
      onWritten?.(error);
    });
  }

  /** The socket closed (however): every call still running is cancelled. */
  socketClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.idle.stop();
    this.budget.closed();
    this.metrics.connections.closed();
    for (const call of this.calls.values()) {
      call.cancel();
      this.count(call.method, StatusCodes.CANCELLED, call.started);
    }
    this.calls.clear();
  }
}

/**
 * One push stream of a connection: its call entry and the sink the core writes to, in one
 * object (no closures per stream).
 */
class StreamCall implements Call, PushSink {
  readonly method = 'SubscribeEvents';
  /** Set right after `openStream` returned (before any cancel can reach this call). */
  stream: OpenedStream | undefined;

  constructor(
    private readonly connection: WebSocketConnection,
    private readonly callId: number,
    readonly started: number,
  ) {}

  cancel(): void {
    this.stream?.cancel();
  }

  write(event: GatewayEvent): boolean {
    const connection = this.connection;
    const frame = encodeFrame(FrameTypes.event, this.callId, encodeEventOnce(event));
    if (connection.socket.bufferedAmount <= connection.limits.bufferHighWaterBytes) {
      connection.send(frame);
      return true;
    }
    // Above the high-water mark: the hub queues further events (up to the push buffer,
    // then the stream overflows) until this frame has reached the socket.
    connection.send(frame, () => this.stream?.resume());
    return false;
  }

  end(error?: GatewayError): void {
    if (!this.connection.finish(this.callId, this)) return;
    this.connection.sendStatus('SubscribeEvents', this.callId, error === undefined ? { code: StatusCodes.OK, details: '' } : toCallStatus(error), this.started);
  }
}
