import type { GatewayEvent, SubscribeRequest } from '../domain.js';
import { GatewayError, GatewayMessages } from '../errors.js';
import type { Logger } from '../ports/logger.port.js';
import type { PushSink, PushStream } from '../push/push-hub.js';
import { describe } from '../services/command-service.js';
import type { SubscriptionService } from '../services/subscription-service.js';

/**
 * A push stream being opened by `GatewayCore.openStream`. Both methods are safe to call at
 * any time, also before the checks finished: the core remembers a drain or a cancel that
 * arrives early and applies it once the stream exists.
 */
export interface OpenedStream {
  /**
   * The transport can take more again (gRPC `drain`, a WebSocket's buffer below its low-water
   * mark) after `PushSink.write` returned false.
   */
  resume(): void;
  /** The client went away: free the hub slot; nothing reaches the sink afterwards. */
  cancel(): void;
  /**
   * Resolves true once the stream is registered, false when it was refused (the sink's
   * `end` was called with the error then) or cancelled before it opened. Never rejects.
   */
  readonly opened: Promise<boolean>;
}

/**
 * Runs a subscribe and connects its stream to `sink`, with the guarantees a transport needs
 * and would otherwise have to rebuild: the bootstrap may be written before `subscribe()`
 * resolves, so a drain or cancel that arrives in between is remembered; `sink.write` is never
 * called after `end` or a cancel; `sink.end` is called at most once, never after a cancel;
 * a refused subscribe ends the sink with its `GatewayError` (anything else becomes `INTERNAL`
 * `internal error`, logged).
 */
export function openStream(subscriptions: SubscriptionService, request: SubscribeRequest, sink: PushSink, logger: Logger): OpenedStream {
  return new StreamOpening(subscriptions, request, sink, logger);
}

/**
 * {@link openStream}'s stream: the guarded sink the hub writes to and the handle the transport
 * holds, in one object (issue 25: an idle device stream keeps no closure of its own).
 */
class StreamOpening implements OpenedStream, PushSink {
  private stream: PushStream | undefined;
  private done = false;
  private cancelled = false;
  private drainMissed = false;
  readonly opened: Promise<boolean>;

  constructor(
    subscriptions: SubscriptionService,
    request: SubscribeRequest,
    private readonly sink: PushSink,
    logger: Logger,
  ) {
    this.opened = subscriptions.subscribe(request, this).then(
      (registered) => {
        this.stream = registered;
        if (this.cancelled) registered.cancel();
        else if (this.drainMissed) registered.resume();
        return !this.cancelled && !registered.closed;
      },
      (error: unknown) => {
        if (!(error instanceof GatewayError)) logger.error('unexpected error opening push stream', { error: describe(error) });
        this.end(error instanceof GatewayError ? error : GatewayError.internal(GatewayMessages.internal, error));
        return false;
      },
    );
  }

  /** {@link PushSink}: nothing reaches the transport's sink after `end` or a cancel. */
  write(event: GatewayEvent): boolean {
    return this.done ? true : this.sink.write(event);
  }

  /** {@link PushSink}: at most once, never after a cancel. */
  end(error: GatewayError | undefined): void {
    if (this.done) return;
    this.done = true;
    this.sink.end(error);
  }

  resume(): void {
    if (this.stream === undefined) this.drainMissed = true;
    else this.stream.resume();
  }

  cancel(): void {
    this.cancelled = true;
    this.done = true;
    this.stream?.cancel();
  }
}
