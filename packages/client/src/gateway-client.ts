import { sign, type KeyObject } from 'node:crypto';
import { Metadata, credentials as grpcCredentials, status as GrpcStatus, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { DeviceSessionState, RateLimitedError, reconnectingStream, verifyCommandResult, withRateLimitRetries, type BackoffOptions, type ExecuteCommandResponse, type GatewayEvent, type VerifiedCommandResult, type VerifiedEvent } from '@edge-gateway/protocol';
import { EdgeGatewayGrpcClient } from './edge-gateway-stub.js';
import { GatewayStatusError, toClientError } from './errors.js';
import { commandRequestBytes, subscribeRequestBytes } from './signing.js';
import { ServerStreamReader } from './stream-reader.js';
import { TrustedGatewayKeys, devicePrivateKey, type GatewayPublicKey } from './trusted-keys.js';

export interface GatewayClientOptions {
  /** Gateway gRPC address, `host:port`. */
  readonly address: string;
  readonly deviceSessionId: string;
  /** The session's user; when omitted it is learned from the first bootstrap event. */
  readonly userId?: string;
  /** The device's Ed25519 key: a KeyObject or a PKCS#8 PEM string. */
  readonly privateKey: KeyObject | string;
  /** Trusted gateway signer keys (raw 32 bytes or base64); several during a key rotation. */
  readonly gatewayPublicKeys: readonly GatewayPublicKey[];
  /** Default: insecure (plaintext). */
  readonly credentials?: ChannelCredentials;
  /** grpc-js channel options, merged over `DEFAULT_CHANNEL_OPTIONS`. */
  readonly channelOptions?: ChannelOptions;
}

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

export interface ExecuteOptions {
  /** Default: a random UUID. */
  readonly requestId?: string;
  /** Absolute deadline, epoch ms (local clock); propagated by the gateway to the downstream. */
  readonly deadlineMs?: number;
  /** Relative alternative to `deadlineMs`. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /**
   * Retries after `RateLimitedError` (default 0: it is thrown): the client waits the gateway's
   * `retry-after-ms` and sends the command again with the same `request_id` (a refused command
   * left no reservation), signed anew. No retry whose wait would end after the deadline; an
   * abort during the wait rejects `CANCELLED`.
   */
  readonly rateLimitRetries?: number;
}

/** A verified ExecuteCommand result (the protocol package's, shared with the WebSocket client). */
export type CommandResponse = VerifiedCommandResult;

export type { VerifiedEvent } from '@edge-gateway/protocol';

/** Reconnect backoff for `subscribe({ autoReconnect: true })` (the protocol package's, shared with client-web). */
export type { BackoffOptions };

export interface SubscribeOptions {
  /** Resume after this event id (default: none, or `lastEventId` when reconnecting). */
  readonly resumeAfterEventId?: string;
  /** Aborting ends the iteration quietly. */
  readonly signal?: AbortSignal;
  /**
   * Reconnect with backoff when the stream ends `UNAVAILABLE` (gateway restart, network),
   * resuming after `lastEventId`. Each new stream starts with its own `gateway.server_time`
   * event; `gateway.resume_incomplete` tells the app that events may have been missed.
   */
  readonly autoReconnect?: boolean;
  readonly backoff?: BackoffOptions;
}

/**
 * Device-side client of the EdgeGateway service: signs requests (SPEC §3), verifies every
 * response and event against the trusted gateway keys, and checks they are bound to this
 * device (request id, user, session).
 */
export class GatewayClient {
  private readonly client: EdgeGatewayGrpcClient;
  private readonly key: KeyObject;
  private readonly trusted: TrustedGatewayKeys;
  private readonly state: DeviceSessionState;

  constructor(options: GatewayClientOptions) {
    this.key = devicePrivateKey(options.privateKey);
    this.trusted = new TrustedGatewayKeys(options.gatewayPublicKeys);
    this.state = new DeviceSessionState({ deviceSessionId: options.deviceSessionId, ...(options.userId === undefined ? {} : { userId: options.userId }) });
    this.client = new EdgeGatewayGrpcClient(options.address, options.credentials ?? grpcCredentials.createInsecure(), {
      ...DEFAULT_CHANNEL_OPTIONS,
      ...options.channelOptions,
    });
  }

  /** Gateway clock minus local clock, learned from `gateway.server_time` (0 until then). */
  get clockOffsetMs(): number {
    return this.state.clockOffsetMs;
  }

  /** The id of the last client event received (empty before any): resume point. */
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

  /**
   * Runs one command. Rejects with `GatewayStatusError` for a gRPC status, with
   * `GatewaySignatureError` / `GatewayBindingError` when the response can't be trusted.
   */
  async execute(messageType: string, payload: Uint8Array, options: ExecuteOptions = {}): Promise<VerifiedCommandResult> {
    const deadline = options.deadlineMs ?? (options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs);
    if ((options.rateLimitRetries ?? 0) <= 0) return this.executeOnce(messageType, payload, options.requestId, deadline, options.signal);
    // One request_id for every attempt: a refused attempt left no reservation.
    const requestId = options.requestId ?? crypto.randomUUID();
    return withRateLimitRetries(() => this.executeOnce(messageType, payload, requestId, deadline, options.signal), {
      retries: options.rateLimitRetries ?? 0,
      ...(deadline === undefined ? {} : { deadlineMs: deadline }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      onAbort: () => new GatewayStatusError(GrpcStatus.CANCELLED, 'cancelled'),
    });
  }

  private async executeOnce(messageType: string, payload: Uint8Array, requestId: string | undefined, deadline: number | undefined, signal: AbortSignal | undefined): Promise<VerifiedCommandResult> {
    const fields = this.state.commandFields(messageType, payload, requestId);
    const signature = sign(null, commandRequestBytes(fields), this.key);
    const response = await new Promise<ExecuteCommandResponse>((resolve, reject) => {
      const call = this.client.executeCommand(
        { ...fields, signature },
        new Metadata(),
        deadline === undefined ? {} : { deadline },
        (error, result) => {
          signal?.removeEventListener('abort', onAbort);
          if (error) reject(toClientError(error));
          else resolve(result);
        },
      );
      const onAbort = (): void => call.cancel();
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    return verifyCommandResult(await this.trusted.keys, response, fields.requestId);
  }

  /**
   * Push events as an async iterable. Ends normally when the gateway ends the stream with OK
   * or `signal` aborts; throws `GatewayStatusError` for a status (e.g. FAILED_PRECONDITION
   * `device session is revoked`), `GatewaySignatureError` / `GatewayBindingError` for an
   * event that can't be trusted (the stream is cancelled then).
   */
  subscribe(options: SubscribeOptions = {}): AsyncIterable<VerifiedEvent> {
    return options.autoReconnect === true ? this.reconnecting(options) : this.once(options, options.resumeAfterEventId ?? '');
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }

  /** `await using client = new GatewayClient(…)`: {@link GatewayClient.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private reconnecting(options: SubscribeOptions): AsyncGenerator<VerifiedEvent> {
    return reconnectingStream({
      open: (resumeAfterEventId) => this.once(options, resumeAfterEventId),
      // A rate-limited open (session_streams) is reopened once its retry-after has passed.
      isRetryable: (error) => error instanceof RateLimitedError || (error instanceof GatewayStatusError && error.code === GrpcStatus.UNAVAILABLE),
      state: this.state,
      ...(options.resumeAfterEventId === undefined ? {} : { resumeAfterEventId: options.resumeAfterEventId }),
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  private async *once(options: SubscribeOptions, resumeAfterEventId: string): AsyncGenerator<VerifiedEvent> {
    if (options.signal?.aborted) return;
    const fields = this.state.subscribeFields(resumeAfterEventId);
    const signature = sign(null, subscribeRequestBytes(fields), this.key);
    const reader = new ServerStreamReader(this.client.subscribeEvents({ ...fields, signature }));
    const onAbort = (): void => reader.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const verifier = this.state.streamVerifier(await this.trusted.keys, fields.requestId);
    try {
      for (;;) {
        let message: GatewayEvent | undefined;
        try {
          message = await reader.next();
        } catch (error) {
          if (options.signal?.aborted && error instanceof GatewayStatusError && error.code === GrpcStatus.CANCELLED) return;
          throw error;
        }
        if (message === undefined) return;
        yield await this.state.accept(verifier, message);
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      reader.cancel();
    }
  }
}
