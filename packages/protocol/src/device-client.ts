import { commandRequestBytesAsync, subscribeRequestBytes } from './canonical.js';
import { fromBase64 } from './base64.js';
import { TrustedKeys, signEd25519, type GatewayPublicKey } from './device-crypto.js';
import { DeviceSessionState } from './device-session-state.js';
import type { DeviceTransport, ReceivedEvent } from './device-transport.js';
import { verifyCommandResult, type VerifiedCommandResult, type VerifiedEvent } from './device-verification.js';
import type { ExecuteCommandRequest, SubscribeEventsRequest } from './messages.js';
import { withRateLimitRetries } from './rate-limit-retry.js';
import { reconnectingStream, type BackoffOptions } from './reconnect.js';
import { GatewayStatusError, RateLimitedError, StatusCodes } from './status-codes.js';

/** Signs `data` with the device's Ed25519 key: the 64-byte pure Ed25519 signature (SPEC §3). */
export type DeviceSigner = (data: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/** Options of {@link DeviceClient}. */
export interface DeviceClientOptions {
  /** What carries the frames: gRPC, WebSocket, or your own (it needs framing only). */
  readonly transport: DeviceTransport;
  readonly deviceSessionId: string;
  /** The session's user; when omitted it is learned from the first bootstrap event. */
  readonly userId?: string;
  /**
   * The device's Ed25519 key: a WebCrypto key (see `importDevicePrivateKey`), ideally
   * non-extractable, or a function that signs with it (e.g. node:crypto's `sign(null, data, key)`).
   */
  readonly privateKey: CryptoKey | DeviceSigner;
  /**
   * The trusted gateway signer keys (raw 32 bytes or base64; several during a key rotation),
   * or keys already imported with `TrustedKeys.create`. A malformed key throws `TypeError` here.
   */
  readonly gatewayPublicKeys: readonly GatewayPublicKey[] | TrustedKeys | PromiseLike<TrustedKeys>;
  /** The local clock, epoch ms (default `Date.now`): request timestamps, deadlines. For tests. */
  readonly clock?: () => number;
  /** Waits `ms`; resolves false at once when `signal` aborts (default: a timer). For tests. */
  readonly sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<boolean>;
  /** A number in [0, 1) for the reconnect jitter (default `Math.random`). For tests. */
  readonly random?: () => number;
}

/** Options of {@link DeviceClient.execute}, the same on every transport. */
export interface DeviceExecuteOptions {
  /** Default: a random UUID. */
  readonly requestId?: string;
  /** Absolute deadline, epoch ms (local clock); propagated by the gateway to the downstream. */
  readonly deadlineMs?: number;
  /** Relative alternative to `deadlineMs`. */
  readonly timeoutMs?: number;
  /** Aborting cancels the call: it rejects `CANCELLED` `cancelled`. */
  readonly signal?: AbortSignal;
  /**
   * Retries after `RateLimitedError` (default 0: it is thrown): the client waits the gateway's
   * `retry-after-ms` and sends the command again with the same `request_id` (a refused command
   * left no reservation), signed anew. No retry whose wait would end after the deadline; an
   * abort during the wait rejects `CANCELLED`.
   */
  readonly rateLimitRetries?: number;
}

/** Options of {@link DeviceClient.subscribe}, the same on every transport. */
export interface DeviceSubscribeOptions {
  /** Resume after this event id (SPEC §8.3; default: none, or `lastEventId` when reconnecting). */
  readonly resumeAfterEventId?: string;
  /** Aborting cancels the stream and ends the iteration quietly. */
  readonly signal?: AbortSignal;
  /**
   * Reopen the stream with backoff when it ends in a way the transport calls retryable
   * (default: `14` `UNAVAILABLE`, and a rate-limited open after its `retryAfterMs`), each time
   * with a newly signed subscribe resuming after `lastEventId`. Each new stream starts with its
   * own `gateway.server_time` event; `gateway.resume_incomplete` tells the app that events may
   * have been missed. Every other end is final.
   */
  readonly autoReconnect?: boolean;
  /** Default: 250 ms growing by 2 up to 10 s, no attempt limit (`DEFAULT_BACKOFF`). */
  readonly backoff?: BackoffOptions;
}

/**
 * The default of {@link DeviceTransport.isRetryable}: a stream that ended `14` `UNAVAILABLE`
 * (gateway restart, lost connection) or was refused by a rate limit (reopened after its
 * `retryAfterMs`) may be reopened.
 */
export function isRetryableStatus(error: unknown): boolean {
  return error instanceof RateLimitedError || (error instanceof GatewayStatusError && error.code === StatusCodes.UNAVAILABLE);
}

/**
 * The device client, transport-free: signs every request with the device key (a new
 * `request_id` and the gateway's clock as `timestamp_ms`, SPEC §3), verifies every response and
 * event against the trusted gateway keys and checks they are bound to this device, keeps the
 * session state (clock offset, user, `lastEventId`, the resume point), reconnects push streams
 * with a newly signed subscribe resuming after the last verified event, and retries
 * rate-limited commands after `retryAfterMs`. A {@link DeviceTransport} only carries frames:
 * `GatewayClient` (gRPC, `@edge-gateway/client`) and `WebGatewayClient` (WebSocket,
 * `@edge-gateway/client-web`) are this client over their transport.
 */
export class DeviceClient {
  private readonly transport: DeviceTransport;
  private readonly state: DeviceSessionState;
  private readonly trusted: Promise<TrustedKeys>;
  private readonly signer: DeviceSigner;
  private readonly clock: () => number;
  private readonly sleep: DeviceClientOptions['sleep'];
  private readonly random: DeviceClientOptions['random'];

  constructor(options: DeviceClientOptions) {
    this.transport = options.transport;
    this.clock = options.clock ?? Date.now;
    this.sleep = options.sleep;
    this.random = options.random;
    this.state = new DeviceSessionState({ deviceSessionId: options.deviceSessionId, clock: this.clock, ...(options.userId === undefined ? {} : { userId: options.userId }) });
    const key = options.privateKey;
    this.signer = typeof key === 'function' ? key : (data) => signEd25519(key, data);
    this.trusted = trustedKeysOf(options.gatewayPublicKeys);
    // Checked at first use; a rejection here must not go unhandled before that.
    this.trusted.catch(() => undefined);
  }

  /** The device session this client signs for. */
  get deviceSessionId(): string {
    return this.state.deviceSessionId;
  }

  /** Gateway clock minus local clock, learned from `gateway.server_time` (0 until then). */
  get clockOffsetMs(): number {
    return this.state.clockOffsetMs;
  }

  /** The id of the last verified client event (empty before any): the resume point. */
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
   * Runs one command. Rejects with `GatewayStatusError` for a status (the same codes and
   * messages on every transport), `GatewaySignatureError` / `GatewayBindingError` when the
   * response can't be trusted.
   */
  async execute(messageType: string, payload: Uint8Array, options: DeviceExecuteOptions = {}): Promise<VerifiedCommandResult> {
    const deadlineMs = options.deadlineMs ?? (options.timeoutMs === undefined ? undefined : this.clock() + options.timeoutMs);
    // One request_id for every attempt: a refused attempt left no reservation.
    const requestId = options.requestId ?? crypto.randomUUID();
    const once = (): Promise<VerifiedCommandResult> => this.executeOnce(messageType, payload, requestId, deadlineMs, options.signal);
    const retries = options.rateLimitRetries ?? 0;
    if (retries <= 0) return once();
    return withRateLimitRetries(once, {
      retries,
      clock: this.clock,
      onAbort: cancelled,
      ...(deadlineMs === undefined ? {} : { deadlineMs }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(this.sleep === undefined ? {} : { sleep: this.sleep }),
    });
  }

  /**
   * Push events as an async iterable: the verified `gateway.server_time` bootstrap first, then
   * client events. Ends normally on an `OK` end or when `signal` aborts; throws
   * `GatewayStatusError` for a status (e.g. `9` `device session is revoked`),
   * `GatewaySignatureError` / `GatewayBindingError` for an event that can't be trusted (the
   * stream is cancelled then). With `autoReconnect` it reopens the stream after retryable ends.
   */
  subscribe(options: DeviceSubscribeOptions = {}): AsyncGenerator<VerifiedEvent, void, undefined> {
    if (options.autoReconnect !== true) return this.stream(options, options.resumeAfterEventId ?? '', false);
    return reconnectingStream({
      open: (resumeAfterEventId) => this.stream(options, resumeAfterEventId, true),
      isRetryable: (error) => (this.transport.isRetryable === undefined ? isRetryableStatus(error) : this.transport.isRetryable(error)),
      state: this.state,
      ...(options.resumeAfterEventId === undefined ? {} : { resumeAfterEventId: options.resumeAfterEventId }),
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(this.sleep === undefined ? {} : { sleep: this.sleep }),
      ...(this.random === undefined ? {} : { random: this.random }),
    });
  }

  /** Closes the transport for good: calls in flight end, nothing reconnects. */
  close(): void {
    this.transport.close();
  }

  private async executeOnce(messageType: string, payload: Uint8Array, requestId: string, deadlineMs: number | undefined, signal: AbortSignal | undefined): Promise<VerifiedCommandResult> {
    if (signal?.aborted) throw cancelled();
    const timeoutMs = deadlineMs === undefined ? undefined : Math.ceil(deadlineMs - this.clock());
    // A deadline already passed: nothing is sent (nor reserved), on every transport.
    if (timeoutMs !== undefined && timeoutMs < 1) throw new GatewayStatusError(StatusCodes.DEADLINE_EXCEEDED, 'Deadline exceeded');
    const request = await this.signCommand(this.state.commandFields(messageType, payload, requestId));
    const response = await this.transport.execute(request, { ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(signal === undefined ? {} : { signal }) });
    return verifyCommandResult(await this.trusted, response, request.requestId);
  }

  /** One push stream: a newly signed subscribe, every event verified before the state learns from it. */
  private async *stream(options: DeviceSubscribeOptions, resumeAfterEventId: string, reconnecting: boolean): AsyncGenerator<VerifiedEvent> {
    const signal = options.signal;
    if (signal?.aborted) return;
    const trusted = await this.trusted;
    const request = await this.signSubscribe(this.state.subscribeFields(resumeAfterEventId));
    const verifier = this.state.streamVerifier(trusted, request.requestId);
    if (signal?.aborted) return;
    const events = this.transport.subscribe(request, { reconnecting, ...(signal === undefined ? {} : { signal }) })[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<ReceivedEvent>;
        try {
          next = await events.next();
        } catch (error) {
          // The app aborted: however the transport ended the stream, the iteration ends quietly.
          if (signal?.aborted) return;
          throw error;
        }
        if (next.done === true) return;
        yield await this.state.accept(verifier, next.value.event, next.value.receivedAt);
      }
    } finally {
      // Left early (break, an event that can't be trusted): the transport cancels the stream.
      await events.return?.();
    }
  }

  private async signCommand(fields: Omit<ExecuteCommandRequest, 'signature'>): Promise<ExecuteCommandRequest> {
    return { ...fields, signature: await this.signer(await commandRequestBytesAsync(fields)) };
  }

  private async signSubscribe(fields: Omit<SubscribeEventsRequest, 'signature'>): Promise<SubscribeEventsRequest> {
    return { ...fields, signature: await this.signer(subscribeRequestBytes(fields)) };
  }
}

function cancelled(): GatewayStatusError {
  return new GatewayStatusError(StatusCodes.CANCELLED, 'cancelled');
}

/** The trusted keys, imported; raw keys are checked at once (a bad one throws `TypeError`). */
function trustedKeysOf(keys: DeviceClientOptions['gatewayPublicKeys']): Promise<TrustedKeys> {
  if (keys instanceof TrustedKeys) return Promise.resolve(keys);
  if (!isKeyList(keys)) return Promise.resolve(keys);
  if (keys.length === 0) throw new TypeError('at least one gateway public key is required');
  for (const key of keys) {
    let raw: Uint8Array;
    try {
      raw = typeof key === 'string' ? fromBase64(key) : key;
    } catch {
      raw = new Uint8Array(0);
    }
    if (raw.length !== 32) throw new TypeError('a gateway public key must be 32 raw bytes (or their base64)');
  }
  return TrustedKeys.create(keys);
}

function isKeyList(keys: DeviceClientOptions['gatewayPublicKeys']): keys is readonly GatewayPublicKey[] {
  return Array.isArray(keys);
}
