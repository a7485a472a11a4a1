import { DeviceClient, TrustedKeys, type BackoffOptions, type GatewayPublicKey } from '@edge-gateway/protocol';
import { WebSocketDeviceTransport, type CloseInfo, type WebSocketConstructor } from './websocket-transport.js';

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
  /**
   * Retries after `RateLimitedError` (default 0: it is thrown): the client waits the gateway's
   * `retry-after-ms` and sends the command again with the same `request_id` (a refused command
   * left no reservation), signed anew. No retry whose wait would end after the deadline; an
   * abort during the wait rejects `CANCELLED`.
   */
  readonly rateLimitRetries?: number;
}

export interface WebSubscribeOptions {
  /** Resume after this event id (SPEC §8.3; default: none, or `lastEventId` when reconnecting). */
  readonly resumeAfterEventId?: string;
  /** Aborting cancels the stream and ends the iteration quietly. */
  readonly signal?: AbortSignal;
  /**
   * Reopen the stream with backoff, resuming after `lastEventId`, when it ended `14`
   * `UNAVAILABLE` (e.g. `gateway is shutting down`) or the connection was lost without a status
   * (see {@link isRetryableEnd}); the client dials a new connection for it when the old one
   * closed. Every other end (a revoked session, an overflow, the app's own `close()`) ends the
   * iteration as without it. Each new stream starts with its own `gateway.server_time` event;
   * `gateway.resume_incomplete` tells the app that events may have been missed.
   */
  readonly autoReconnect?: boolean;
  /** Default: 250 ms growing by 2 up to 10 s, no attempt limit (the gRPC client's). */
  readonly backoff?: BackoffOptions;
}

/**
 * A device's connection to the gateway over WebSocket (SPEC §2.2): the protocol package's
 * {@link DeviceClient} (WebCrypto Ed25519 signing, verification of every result and event
 * against the trusted gateway keys, session state, resume, reconnects, rate-limit retries) over
 * a {@link WebSocketDeviceTransport}. Calls run concurrently on the one connection; a
 * `subscribe({ autoReconnect: true })` stream replaces a lost connection with a new one, which
 * later calls use too.
 */
export class WebGatewayClient extends DeviceClient {
  private constructor(
    private readonly websocket: WebSocketDeviceTransport,
    trusted: TrustedKeys,
    options: WebGatewayClientOptions,
  ) {
    super({
      transport: websocket,
      deviceSessionId: options.deviceSessionId,
      ...(options.userId === undefined ? {} : { userId: options.userId }),
      privateKey: options.privateKey,
      gatewayPublicKeys: trusted,
    });
  }

  /** Opens the connection; rejects when it cannot be opened (refused origin, no gateway). */
  static async connect(options: WebGatewayClientOptions): Promise<WebGatewayClient> {
    const trusted = await TrustedKeys.create(options.gatewayPublicKeys);
    const transport = await WebSocketDeviceTransport.connect({ url: options.url, ...(options.WebSocket === undefined ? {} : { WebSocket: options.WebSocket }) });
    return new WebGatewayClient(transport, trusted, options);
  }

  /**
   * Resolves when the current connection closed, with the close code and reason (after an
   * `autoReconnect` stream replaced it, the new connection's).
   */
  get closed(): Promise<CloseInfo> {
    return this.websocket.closed;
  }
}
