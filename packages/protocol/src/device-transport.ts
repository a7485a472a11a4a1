import type { ExecuteCommandRequest, ExecuteCommandResponse, GatewayEvent, SubscribeEventsRequest } from './messages.js';

/** How one command is to be carried (set by {@link DeviceClient}; the transport only frames it). */
export interface TransportCallOptions {
  /**
   * The time left until the call's deadline, whole ms, at least 1 (the client fails a deadline
   * already passed with `DEADLINE_EXCEEDED` `Deadline exceeded` and sends nothing). Undefined:
   * no deadline of the caller's; the gateway's downstream timeout applies.
   */
  readonly timeoutMs?: number;
  /** Aborting cancels the call: reject with `GatewayStatusError` `CANCELLED` `cancelled`. */
  readonly signal?: AbortSignal;
}

/** How one push stream is to be opened. */
export interface TransportStreamOptions {
  /**
   * Aborting ends the stream: cancel it on the gateway and end the iteration (quietly or with
   * any error: the client ends the subscription quietly either way).
   */
  readonly signal?: AbortSignal;
  /**
   * True for a stream of a `subscribe({ autoReconnect: true })` subscription: when the
   * transport's connection was lost, it may dial a new one for this open instead of failing it.
   */
  readonly reconnecting: boolean;
}

/** A push event as a transport received it, not yet verified. */
export interface ReceivedEvent {
  readonly event: GatewayEvent;
  /** Local time it arrived, epoch ms (default: when the client reads it); the clock offset is measured against it. */
  readonly receivedAt?: number;
}

/**
 * What a device client needs from a transport: framing only. Signing, verification, the
 * session state, resume, reconnects and rate-limit retries are {@link DeviceClient}'s, the
 * same on every transport. Everything the transport is handed is already signed; it must send
 * it unchanged (SPEC §8.3: a transport never rewrites a signed request), and hand back what
 * the gateway sent, unverified.
 *
 * Failures are `GatewayStatusError`s with the SPEC §4 code and message (`statusError(code,
 * details, retryAfterMs)` builds them, a `RateLimitedError` for `8` `rate limit exceeded`); a
 * lost connection is `14` `UNAVAILABLE`.
 */
export interface DeviceTransport {
  /** Sends one signed ExecuteCommand request; resolves the gateway's (unverified) response. */
  execute(request: ExecuteCommandRequest, options: TransportCallOptions): Promise<ExecuteCommandResponse>;
  /**
   * Opens one push stream with a signed SubscribeEvents request and yields its events in order.
   * Ends normally when the gateway ends it with `OK`; throws `GatewayStatusError` for any other
   * status. When the client stops iterating early (`return()`), the stream must be cancelled
   * on the gateway (an async generator's `finally` does it).
   */
  subscribe(request: SubscribeEventsRequest, options: TransportStreamOptions): AsyncIterable<ReceivedEvent>;
  /**
   * True when a stream that ended with `error` may be reopened by `autoReconnect`. Default
   * ({@link isRetryableStatus}): `14` `UNAVAILABLE` and a `RateLimitedError`.
   */
  isRetryable?(error: unknown): boolean;
  /** Closes the transport for good: calls in flight end, nothing reconnects. */
  close(): void;
}
