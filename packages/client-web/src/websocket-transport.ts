import {
  CloseCodes,
  FrameTypes,
  GatewayStatusError,
  RateLimitedError,
  StatusCodes,
  WEBSOCKET_SUBPROTOCOL,
  WEBSOCKET_SUBPROTOCOL_TRAILERS,
  decodeAnyStatus,
  decodeExecuteCommandResponse,
  decodeFrame,
  decodeGatewayEvent,
  encodeExecuteCommandRequest,
  encodeFrame,
  encodeSubscribeEventsRequest,
  encodeTimedExecute,
  statusError as statusErrorOf,
  type CallStatus,
  type DeviceTransport,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type ReceivedEvent,
  type SubscribeEventsRequest,
  type TransportCallOptions,
  type TransportStreamOptions,
} from '@edge-gateway/protocol';

/** The part of the browser `WebSocket` API the client uses (the `ws` package's WebSocket has it too). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/**
 * Close codes after which a stream that got no status frame is reopened by `autoReconnect`:
 * the connection was lost or the gateway (or a proxy) is going away, nothing this client did.
 * `1001` going away (gateway shutdown), `1005` closed without a code, `1006` dropped without a
 * close frame (network change, killed process, missed keep-alive), `1012` service restart,
 * `1013` try again later. Not retried: `1000` (a deliberate close, the app's `close()`
 * included), `1002` / `1003` / `1008` / `1009` (this client broke the protocol or a limit;
 * reconnecting would repeat it), `1011` (an unexpected gateway error, like gRPC's `INTERNAL`)
 * and any other code (fail closed).
 */
export const RETRYABLE_CLOSE_CODES: ReadonlySet<number> = new Set([CloseCodes.goingAway, 1005, 1006, 1012, 1013]);

/**
 * The gateway closed a connection because it had nothing to do on it (SPEC §2.2): `1000`
 * `idle` (no call in flight for `GATEWAY_WEBSOCKET_IDLE_TIMEOUT`) or `1008` `no frame received`
 * (nothing sent after the upgrade). The next call dials a new connection.
 */
export function isIdleClose(info: CloseInfo): boolean {
  return (info.code === CloseCodes.normal && info.reason === 'idle') || (info.code === CloseCodes.policyViolation && info.reason === 'no frame received');
}

/** How the connection closed. */
export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
}

interface PendingCall {
  onFrame(type: number, body: Uint8Array): void;
  onClosed(info: CloseInfo): void;
}

/** One WebSocket connection and the calls in flight on it. */
class Connection {
  private readonly calls = new Map<number, PendingCall>();
  private nextCallId = 1;
  /** Set once the connection closed. */
  closeInfo: CloseInfo | undefined;

  private constructor(
    private readonly socket: WebSocketLike,
    /** Resolves when the connection closed, with the close code and reason. */
    readonly closed: Promise<CloseInfo>,
  ) {
    socket.onmessage = (event) => this.onMessage(event.data);
  }

  /** Opens a connection; rejects `UNAVAILABLE` when it cannot be opened (refused origin, no gateway). */
  static async dial(options: WebSocketDeviceTransportOptions): Promise<Connection> {
    const Ctor = options.WebSocket ?? (globalThis as unknown as { WebSocket: WebSocketConstructor }).WebSocket;
    // edgegateway.v1.1 first (status trailers: the retry-after of a rate-limited call); older gateways pick edgegateway.v1.
    const socket = new Ctor(options.url, [WEBSOCKET_SUBPROTOCOL_TRAILERS, WEBSOCKET_SUBPROTOCOL]);
    socket.binaryType = 'arraybuffer';
    // Filled once open: a close before that rejects the dial, a close after it ends the calls.
    const opened: { connection?: Connection } = {};
    let onClosed!: (info: CloseInfo) => void;
    const closed = new Promise<CloseInfo>((resolve) => (onClosed = resolve));
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => undefined;
      socket.onclose = (event) => {
        const info = { code: event.code, reason: event.reason };
        onClosed(info);
        if (opened.connection === undefined) reject(new GatewayStatusError(StatusCodes.UNAVAILABLE, `websocket closed before it opened (${event.code})`));
        else opened.connection.onClose(info);
      };
    });
    opened.connection = new Connection(socket, closed);
    return opened.connection;
  }

  /** A call id for a new call; throws `UNAVAILABLE` once the connection closed. */
  open(): number {
    if (this.closeInfo !== undefined) throw closedError(this.closeInfo);
    const id = this.nextCallId;
    this.nextCallId = this.nextCallId >= 0xffffffff ? 1 : this.nextCallId + 1;
    return id;
  }

  track(callId: number, call: PendingCall): void {
    this.calls.set(callId, call);
  }

  /** Forgets the call; true when it was still in flight. */
  forget(callId: number): boolean {
    return this.calls.delete(callId);
  }

  /** Gives the call up: forgets it and, when it was in flight, tells the gateway. */
  cancel(callId: number): void {
    if (this.calls.delete(callId)) this.send(FrameTypes.cancel, callId);
  }

  send(type: (typeof FrameTypes)[keyof typeof FrameTypes], callId: number, body?: Uint8Array): void {
    if (this.closeInfo === undefined && this.socket.readyState === 1) this.socket.send(encodeFrame(type, callId, body));
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
  }

  private onMessage(data: unknown): void {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : undefined;
    if (bytes === undefined) return this.socket.close(CloseCodes.unsupportedData, 'binary frames only');
    let frame;
    try {
      frame = decodeFrame(bytes);
    } catch {
      return this.socket.close(CloseCodes.protocolError, 'malformed frame');
    }
    this.calls.get(frame.callId)?.onFrame(frame.type, frame.body);
  }

  private onClose(info: CloseInfo): void {
    this.closeInfo = info;
    for (const call of [...this.calls.values()]) call.onClosed(info);
    this.calls.clear();
  }
}

/** Options of {@link WebSocketDeviceTransport}. */
export interface WebSocketDeviceTransportOptions {
  /** The gateway's WebSocket endpoint, e.g. `wss://gateway.example.com/v1/ws`. */
  readonly url: string;
  /** Default: the global `WebSocket` (browsers, Node 22+); pass `ws`'s WebSocket on Node 20. */
  readonly WebSocket?: WebSocketConstructor;
}

/**
 * The WebSocket framing of a device client (SPEC §2.2): calls run concurrently on one
 * connection, each a call id; a command is an execute frame (`0x04` with the time left when it
 * has a deadline), a push stream a subscribe frame answered by event frames and a status frame.
 * A connection the gateway closed for idleness is replaced for the next call; a stream of an
 * `autoReconnect` subscription replaces a lost connection (later calls use the new one too).
 * Signing, verification, resume and reconnects are the `DeviceClient`'s
 * (`@edge-gateway/protocol`); `WebGatewayClient` is that client over this transport.
 */
export class WebSocketDeviceTransport implements DeviceTransport {
  private connection: Connection;
  /** The dial in progress for a lost connection, shared by every stream that needs it. */
  private redial: Promise<Connection> | undefined;
  private closedByApp = false;

  private constructor(
    connection: Connection,
    private readonly options: WebSocketDeviceTransportOptions,
  ) {
    this.connection = connection;
  }

  /** Opens the connection; rejects `UNAVAILABLE` when it cannot be opened (refused origin, no gateway). */
  static async connect(options: WebSocketDeviceTransportOptions): Promise<WebSocketDeviceTransport> {
    return new WebSocketDeviceTransport(await Connection.dial(options), options);
  }

  /** Resolves when the current connection closed, with the close code and reason. */
  get closed(): Promise<CloseInfo> {
    return this.connection.closed;
  }

  /** Which stream ends are reopened: {@link isRetryableEnd}. */
  isRetryable(error: unknown): boolean {
    return isRetryableEnd(error);
  }

  /** Closes the connection (1000) for good; calls in flight reject with `UNAVAILABLE`, nothing reconnects. */
  close(): void {
    this.closedByApp = true;
    this.connection.close(CLOSED_BY_APP.code, CLOSED_BY_APP.reason);
  }

  /** One call on the connection: an execute frame (`0x04` with `timeoutMs`), answered by a result or a status frame. */
  async execute(request: ExecuteCommandRequest, options: TransportCallOptions): Promise<ExecuteCommandResponse> {
    const connection = await this.usableConnection();
    const callId = connection.open();
    const signal = options.signal;
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => {
        connection.cancel(callId);
        reject(new GatewayStatusError(StatusCodes.CANCELLED, 'cancelled'));
      };
      const done = (): void => {
        connection.forget(callId);
        signal?.removeEventListener('abort', onAbort);
      };
      connection.track(callId, {
        onFrame: (type, body) => {
          done();
          if (type === FrameTypes.result) resolve(body);
          else if (type === FrameTypes.status || type === FrameTypes.statusWithTrailers) reject(statusError(decodeAnyStatus(type, body)));
          else reject(new GatewayStatusError(StatusCodes.INTERNAL, `unexpected frame type ${type} for a command`));
        },
        onClosed: (info) => {
          done();
          reject(closedError(info));
        },
      });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      // Without a timeout the plain execute frame: gateways without per-call deadlines understand it.
      if (options.timeoutMs === undefined) connection.send(FrameTypes.execute, callId, encodeExecuteCommandRequest(request));
      else connection.send(FrameTypes.executeWithTimeout, callId, encodeTimedExecute(options.timeoutMs, encodeExecuteCommandRequest(request)));
    });
    return decodeExecuteCommandResponse(await answer);
  }

  /** One call on the connection: a subscribe frame, then event frames until a status frame; leaving early sends a cancel frame. */
  async *subscribe(request: SubscribeEventsRequest, options: TransportStreamOptions): AsyncGenerator<ReceivedEvent> {
    const connection = await untilAborted(options.reconnecting ? this.reconnectingConnection() : this.usableConnection(), options.signal);
    if (connection === undefined) return;
    yield* this.stream(connection, request, options.signal);
  }

  /** The connection a stream of an `autoReconnect` subscription goes on: a new one when the current one was lost. */
  private async reconnectingConnection(): Promise<Connection> {
    // The app's close() is final, whatever closed the connection before it.
    if (this.closedByApp) throw closedError(CLOSED_BY_APP);
    return this.connection.closeInfo === undefined ? this.connection : this.dialAgain();
  }

  /** A new connection replacing the closed one, shared by every call that needs it. */
  private dialAgain(): Promise<Connection> {
    return (this.redial ??= Connection.dial(this.options).then(
      (fresh) => {
        this.redial = undefined;
        // The app closed the client meanwhile: the new connection is not wanted either.
        if (this.closedByApp) {
          fresh.close(CLOSED_BY_APP.code, CLOSED_BY_APP.reason);
          throw closedError(CLOSED_BY_APP);
        }
        this.connection = fresh;
        return fresh;
      },
      (error: unknown) => {
        this.redial = undefined;
        throw error;
      },
    ));
  }

  /**
   * The connection a new call goes on: the current one, or a new one when the gateway closed
   * the current one for doing nothing ({@link isIdleClose}); any other close stays (the call
   * then fails `UNAVAILABLE`).
   */
  private async usableConnection(): Promise<Connection> {
    const info = this.connection.closeInfo;
    if (info === undefined || this.closedByApp || !isIdleClose(info)) return this.connection;
    return this.dialAgain();
  }

  private async *stream(connection: Connection, request: SubscribeEventsRequest, signal: AbortSignal | undefined): AsyncGenerator<ReceivedEvent> {
    if (signal?.aborted) return;
    const callId = connection.open();
    const queue: ReceivedEvent[] = [];
    let end: { error?: Error } | undefined;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    connection.track(callId, {
      onFrame: (type, body) => {
        if (type === FrameTypes.event) {
          queue.push({ event: decodeGatewayEvent(body), receivedAt: Date.now() });
        } else {
          connection.forget(callId);
          const status = type === FrameTypes.status || type === FrameTypes.statusWithTrailers ? decodeAnyStatus(type, body) : { code: StatusCodes.INTERNAL, details: `unexpected frame type ${type}` };
          end = status.code === StatusCodes.OK ? {} : { error: statusError(status) };
        }
        notify();
      },
      onClosed: (info) => {
        connection.forget(callId);
        end = { error: closedError(info) };
        notify();
      },
    });
    const onAbort = (): void => {
      connection.cancel(callId);
      end = {};
      notify();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    connection.send(FrameTypes.subscribe, callId, encodeSubscribeEventsRequest(request));
    try {
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (end !== undefined) {
          if (end.error !== undefined && !signal?.aborted) throw end.error;
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      // Left early (break, a verification error): cancel the stream on the gateway.
      connection.cancel(callId);
    }
  }
}

/**
 * The stream ends `subscribe({ autoReconnect: true })` reopens: a `14` `UNAVAILABLE` status
 * frame (the gateway's `gateway is shutting down`, `push feed unavailable`), a new connection
 * that could not be opened (`websocket closed before it opened`: the gateway is down or
 * restarting), and a connection that closed under the stream with one of
 * {@link RETRYABLE_CLOSE_CODES}. Everything else is final: other statuses (`9`
 * `device session is revoked`, `8` `push stream overflowed`), other close codes, and errors
 * that are not statuses (a `GatewaySignatureError` or `GatewayBindingError`).
 */
export function isRetryableEnd(error: unknown): boolean {
  // A rate-limited open (session_streams): reopened once its retry-after has passed.
  if (error instanceof RateLimitedError) return true;
  if (!(error instanceof GatewayStatusError) || error.code !== StatusCodes.UNAVAILABLE) return false;
  const closedWith = CLOSE_OF.get(error);
  return closedWith === undefined || RETRYABLE_CLOSE_CODES.has(closedWith.code);
}

/** How `close()` closes the connection. */
const CLOSED_BY_APP: CloseInfo = { code: CloseCodes.normal, reason: 'client closed' };

/** The close behind each "connection closed" error (errors from status frames have none). */
const CLOSE_OF = new WeakMap<GatewayStatusError, CloseInfo>();

/** `promise`'s value, or undefined as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** A `RateLimitedError` (with the frame's `retry-after-ms`) for `8` `rate limit exceeded`, else a `GatewayStatusError`. */
function statusError(status: CallStatus): GatewayStatusError {
  return statusErrorOf(status.code, status.details, status.retryAfterMs);
}

/** Calls in flight when the connection closes fail `UNAVAILABLE`, naming the close code. */
function closedError(info: CloseInfo): GatewayStatusError {
  const error = new GatewayStatusError(StatusCodes.UNAVAILABLE, `connection closed (${info.code}${info.reason === '' ? '' : ` ${info.reason}`})`);
  CLOSE_OF.set(error, info);
  return error;
}
