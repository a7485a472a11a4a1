import {
  CloseCodes,
  DeviceSessionState,
  FrameTypes,
  GatewayStatusError,
  StatusCodes,
  TrustedKeys,
  WEBSOCKET_SUBPROTOCOL,
  decodeExecuteCommandResponse,
  decodeFrame,
  decodeGatewayEvent,
  decodeStatus,
  encodeExecuteCommandRequest,
  encodeFrame,
  encodeSubscribeEventsRequest,
  encodeTimedExecute,
  signCommandRequest,
  signSubscribeRequest,
  verifyCommandResult,
  type CallStatus,
  type GatewayEvent,
  type GatewayPublicKey,
  type VerifiedCommandResult,
  type VerifiedEvent,
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

export interface WebGatewayClientOptions {
  /** The gateway's WebSocket endpoint, e.g. `wss://gateway.example.com/v1/ws`. */
  readonly url: string;
  readonly deviceSessionId: string;
  /** The session's user; when omitted it is learned from the first bootstrap event. */
  readonly userId?: string;
  /** The device's Ed25519 key (WebCrypto; see `importDevicePrivateKey`), ideally non-extractable. */
  readonly privateKey: CryptoKey;
  /** Trusted gateway signer keys (raw 32 bytes or base64); several during a key rotation. */
  readonly gatewayPublicKeys: readonly GatewayPublicKey[];
  /** Default: the global `WebSocket` (browsers, Node 22+); pass `ws`'s WebSocket on Node 20. */
  readonly WebSocket?: WebSocketConstructor;
}

export interface WebExecuteOptions {
  /** Default: a random UUID. */
  readonly requestId?: string;
  /**
   * Per-call timeout in ms (1 to `MAX_CALL_TIMEOUT_MS`, 5 minutes): the gateway's deadline for
   * this command, propagated to the downstream; when it passes the call ends
   * `DEADLINE_EXCEEDED` `Deadline exceeded`. Default: none, the gateway's downstream timeout applies.
   */
  readonly timeoutMs?: number;
  /** Absolute alternative to `timeoutMs`, epoch ms (local clock); sent as the time left. */
  readonly deadlineMs?: number;
  /** Aborting sends a cancel frame and rejects with `CANCELLED`. */
  readonly signal?: AbortSignal;
}

export interface WebSubscribeOptions {
  /** Resume after this event id (SPEC §8.3). */
  readonly resumeAfterEventId?: string;
  /** Aborting cancels the stream and ends the iteration quietly. */
  readonly signal?: AbortSignal;
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

/**
 * A device's connection to the gateway over WebSocket (SPEC §2.2): signs requests with
 * WebCrypto Ed25519, verifies every result and event against the trusted gateway keys and
 * checks they are bound to this device. Calls run concurrently on the one connection.
 */
export class WebGatewayClient {
  private readonly calls = new Map<number, PendingCall>();
  private nextCallId = 1;
  private readonly state: DeviceSessionState;
  private closeInfo: CloseInfo | undefined;
  /** Resolves when the connection closed, with the close code and reason. */
  readonly closed: Promise<CloseInfo>;

  private constructor(
    private readonly socket: WebSocketLike,
    private readonly trusted: TrustedKeys,
    private readonly options: WebGatewayClientOptions,
    closed: Promise<CloseInfo>,
  ) {
    this.state = new DeviceSessionState({ deviceSessionId: options.deviceSessionId, ...(options.userId === undefined ? {} : { userId: options.userId }) });
    this.closed = closed;
    socket.onmessage = (event) => this.onMessage(event.data);
  }

  /** Opens the connection; rejects when it cannot be opened (refused origin, no gateway). */
  static async connect(options: WebGatewayClientOptions): Promise<WebGatewayClient> {
    const trusted = await TrustedKeys.create(options.gatewayPublicKeys);
    const Ctor = options.WebSocket ?? (globalThis as unknown as { WebSocket: WebSocketConstructor }).WebSocket;
    const socket = new Ctor(options.url, WEBSOCKET_SUBPROTOCOL);
    socket.binaryType = 'arraybuffer';
    // Filled once open: a close before that rejects the connect, a close after it ends the calls.
    const opened: { client?: WebGatewayClient } = {};
    let onClosed!: (info: CloseInfo) => void;
    const closed = new Promise<CloseInfo>((resolve) => (onClosed = resolve));
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => undefined;
      socket.onclose = (event) => {
        const info = { code: event.code, reason: event.reason };
        onClosed(info);
        if (opened.client === undefined) reject(new GatewayStatusError(StatusCodes.UNAVAILABLE, `websocket closed before it opened (${event.code})`));
        else opened.client.onClose(info);
      };
    });
    opened.client = new WebGatewayClient(socket, trusted, options, closed);
    return opened.client;
  }

  /** Gateway clock minus local clock, learned from `gateway.server_time` (0 until then). */
  get clockOffsetMs(): number {
    return this.state.clockOffsetMs;
  }

  /** The id of the last client event received (empty before any): the resume point. */
  get lastEventId(): string {
    return this.state.lastEventId;
  }

  /** The session's user id, given or learned from a bootstrap event. */
  get userId(): string | undefined {
    return this.state.userId;
  }

  /** The gateway's idea of now: local clock plus the learned offset. */
  now(): number {
    return this.state.now();
  }

  /** Closes the connection (1000); calls in flight reject with `UNAVAILABLE`. */
  close(): void {
    this.socket.close(CloseCodes.normal, 'client closed');
  }

  /**
   * Runs one command. Rejects with `GatewayStatusError` for a status (the same codes and
   * messages as gRPC), `GatewaySignatureError` / `GatewayBindingError` when the result can't be trusted.
   */
  async execute(messageType: string, payload: Uint8Array, options: WebExecuteOptions = {}): Promise<VerifiedCommandResult> {
    const timeoutMs = options.deadlineMs !== undefined ? Math.ceil(options.deadlineMs - Date.now()) : options.timeoutMs === undefined ? undefined : Math.ceil(options.timeoutMs);
    // A deadline already passed: nothing is sent (nor reserved), as with a gRPC deadline.
    if (timeoutMs !== undefined && timeoutMs < 1) throw new GatewayStatusError(StatusCodes.DEADLINE_EXCEEDED, 'Deadline exceeded');
    const request = await signCommandRequest(this.options.privateKey, this.state.commandFields(messageType, payload, options.requestId));
    const callId = this.open();
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => {
        this.cancel(callId);
        reject(new GatewayStatusError(StatusCodes.CANCELLED, 'cancelled'));
      };
      const done = (): void => {
        this.calls.delete(callId);
        options.signal?.removeEventListener('abort', onAbort);
      };
      this.calls.set(callId, {
        onFrame: (type, body) => {
          done();
          if (type === FrameTypes.result) resolve(body);
          else if (type === FrameTypes.status) reject(statusError(decodeStatus(body)));
          else reject(new GatewayStatusError(StatusCodes.INTERNAL, `unexpected frame type ${type} for a command`));
        },
        onClosed: (info) => {
          done();
          reject(closedError(info));
        },
      });
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      // Without a timeout the plain execute frame: gateways without per-call deadlines understand it.
      if (timeoutMs === undefined) this.send(FrameTypes.execute, callId, encodeExecuteCommandRequest(request));
      else this.send(FrameTypes.executeWithTimeout, callId, encodeTimedExecute(timeoutMs, encodeExecuteCommandRequest(request)));
    });
    return verifyCommandResult(this.trusted, decodeExecuteCommandResponse(await answer), request.requestId);
  }

  /**
   * Push events as an async iterable: the verified `gateway.server_time` bootstrap first, then
   * client events. Ends normally on an `OK` status or when `signal` aborts; throws
   * `GatewayStatusError` for a status (e.g. FAILED_PRECONDITION `device session is revoked`).
   */
  async *subscribe(options: WebSubscribeOptions = {}): AsyncGenerator<VerifiedEvent> {
    if (options.signal?.aborted) return;
    const request = await signSubscribeRequest(this.options.privateKey, this.state.subscribeFields(options.resumeAfterEventId));
    const verifier = this.state.streamVerifier(this.trusted, request.requestId);
    const callId = this.open();
    const queue: Array<{ event: GatewayEvent; receivedAt: number }> = [];
    let end: { error?: Error } | undefined;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    this.calls.set(callId, {
      onFrame: (type, body) => {
        if (type === FrameTypes.event) {
          queue.push({ event: decodeGatewayEvent(body), receivedAt: Date.now() });
        } else {
          this.calls.delete(callId);
          const status = type === FrameTypes.status ? decodeStatus(body) : { code: StatusCodes.INTERNAL, details: `unexpected frame type ${type}` };
          end = status.code === StatusCodes.OK ? {} : { error: statusError(status) };
        }
        notify();
      },
      onClosed: (info) => {
        this.calls.delete(callId);
        end = { error: closedError(info) };
        notify();
      },
    });
    const onAbort = (): void => {
      if (this.calls.delete(callId)) this.send(FrameTypes.cancel, callId);
      end = {};
      notify();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    this.send(FrameTypes.subscribe, callId, encodeSubscribeEventsRequest(request));
    try {
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          yield await this.state.accept(verifier, next.event, next.receivedAt);
          continue;
        }
        if (end !== undefined) {
          if (end.error !== undefined && !options.signal?.aborted) throw end.error;
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      // Left early (break, a verification error): cancel the stream on the gateway.
      if (this.calls.delete(callId)) this.send(FrameTypes.cancel, callId);
    }
  }

  private open(): number {
    if (this.closeInfo !== undefined) throw closedError(this.closeInfo);
    const id = this.nextCallId;
    this.nextCallId = this.nextCallId >= 0xffffffff ? 1 : this.nextCallId + 1;
    return id;
  }

  private cancel(callId: number): void {
    if (this.calls.delete(callId)) this.send(FrameTypes.cancel, callId);
  }

  private send(type: (typeof FrameTypes)[keyof typeof FrameTypes], callId: number, body?: Uint8Array): void {
    if (this.closeInfo === undefined && this.socket.readyState === 1) this.socket.send(encodeFrame(type, callId, body));
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

function statusError(status: CallStatus): GatewayStatusError {
  return new GatewayStatusError(status.code, status.details);
}

/** Calls in flight when the connection closes fail `UNAVAILABLE`, naming the close code. */
function closedError(info: CloseInfo): GatewayStatusError {
  return new GatewayStatusError(StatusCodes.UNAVAILABLE, `connection closed (${info.code}${info.reason === '' ? '' : ` ${info.reason}`})`);
}
