import type { TrustedKeys } from './device-crypto.js';
import { StreamVerifier, type VerifiedEvent } from './device-verification.js';
import type { ExecuteCommandRequest, GatewayEvent, SubscribeEventsRequest } from './messages.js';

/** Options of {@link DeviceSessionState}. */
export interface DeviceSessionStateOptions {
  readonly deviceSessionId: string;
  /** The session's user; when omitted it is learned from the first bootstrap event. */
  readonly userId?: string;
  /** The local clock, epoch ms (default `Date.now`). */
  readonly clock?: () => number;
}

/**
 * What a device client learns over its push streams and needs for its next requests, the same
 * on every transport: the gateway's clock (offset learned from the `gateway.server_time`
 * bootstrap, used to timestamp requests inside the freshness window), the session's user
 * (given, or learned from the bootstrap) and the id of the last client event (the resume point).
 * Only verified events teach it anything.
 */
export class DeviceSessionState {
  readonly deviceSessionId: string;
  private readonly clock: () => number;
  private knownUserId: string | undefined;
  private offsetMs = 0;
  private lastId = '';

  constructor(options: DeviceSessionStateOptions) {
    this.deviceSessionId = options.deviceSessionId;
    this.knownUserId = options.userId;
    this.clock = options.clock ?? Date.now;
  }

  /** Gateway clock minus local clock, learned from `gateway.server_time` (0 until then). */
  get clockOffsetMs(): number {
    return this.offsetMs;
  }

  /** The id of the last client event received (empty before any): the resume point. */
  get lastEventId(): string {
    return this.lastId;
  }

  /** The session's user id, given or learned from a bootstrap event. */
  get userId(): string | undefined {
    return this.knownUserId;
  }

  /** The gateway's idea of now: local clock plus the learned offset. */
  now(): number {
    return this.clock() + this.offsetMs;
  }

  /** The unsigned fields of an ExecuteCommand request, timestamped with {@link now}. */
  commandFields(messageType: string, payload: Uint8Array, requestId: string = crypto.randomUUID()): Omit<ExecuteCommandRequest, 'signature'> {
    return { deviceSessionId: this.deviceSessionId, messageType, requestId, timestampMs: this.now(), payload };
  }

  /** The unsigned fields of a SubscribeEvents request, timestamped with {@link now}. */
  subscribeFields(resumeAfterEventId = '', requestId: string = crypto.randomUUID()): Omit<SubscribeEventsRequest, 'signature'> {
    return { deviceSessionId: this.deviceSessionId, requestId, timestampMs: this.now(), resumeAfterEventId };
  }

  /** A verifier for a new push stream of this session, opened with `subscribeRequestId`. */
  streamVerifier(trusted: TrustedKeys, subscribeRequestId: string): StreamVerifier {
    return new StreamVerifier(trusted, this.deviceSessionId, subscribeRequestId, this.knownUserId);
  }

  /**
   * Verifies the next event of a stream with its `verifier` and learns from it: the user and
   * clock offset from a bootstrap, the resume point from a client event. Throws (and learns
   * nothing) for an event that can't be trusted. `receivedAt` is the local time it arrived.
   */
  async accept(verifier: StreamVerifier, message: GatewayEvent, receivedAt: number = this.clock()): Promise<VerifiedEvent> {
    const event = await verifier.verify(message, receivedAt);
    if (event.serverTime !== undefined) {
      this.knownUserId = verifier.userId;
      this.offsetMs = verifier.clockOffsetMs;
    }
    if (event.eventId !== '') this.lastId = event.eventId;
    return event;
  }
}
