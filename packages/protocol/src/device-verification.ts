import { commandResultBytesAsync, eventBytesAsync } from './canonical.js';
import type { TrustedKeys } from './device-crypto.js';
import { decodeServerTime, type ExecuteCommandResponse, type GatewayEvent } from './messages.js';

/** Reserved event types the gateway itself emits. */
export const GatewayEventTypes = {
  serverTime: 'gateway.server_time',
  resumeIncomplete: 'gateway.resume_incomplete',
} as const;

/**
 * A correctly signed message that is not bound to this device: another user or device
 * session, another request id, or a bootstrap out of place.
 */
export class GatewayBindingError extends Error {
  override readonly name = 'GatewayBindingError';
  readonly code = 'gateway_binding_mismatch';
}

/** A verified ExecuteCommand result. */
export interface VerifiedCommandResult {
  readonly requestId: string;
  readonly resultCode: string;
  readonly payload: Uint8Array;
  readonly timestampMs: number;
  readonly signerKeyId: string;
}

/** A push event whose signature and binding were verified. */
export interface VerifiedEvent {
  readonly eventId: string;
  readonly eventType: string;
  readonly userId: string;
  readonly deviceSessionId: string;
  readonly timestampMs: number;
  readonly payload: Uint8Array;
  readonly signerKeyId: string;
  /** The decoded payload of a `gateway.server_time` event. */
  readonly serverTime?: { readonly serverTimeMs: number; readonly requestId: string };
}

/**
 * Verifies a command result: the gateway's signature, and that it answers `requestId`.
 * Rejects with `GatewaySignatureError` or `GatewayBindingError`.
 */
export async function verifyCommandResult(trusted: TrustedKeys, response: ExecuteCommandResponse, requestId: string): Promise<VerifiedCommandResult> {
  await trusted.verify('command response', response.signerKeyId, await commandResultBytesAsync(response), response.signature);
  if (response.requestId !== requestId) {
    throw new GatewayBindingError(`command response answers request "${response.requestId}", not "${requestId}"`);
  }
  return {
    requestId: response.requestId,
    resultCode: response.resultCode,
    payload: response.payload,
    timestampMs: response.timestampMs,
    signerKeyId: response.signerKeyId,
  };
}

/**
 * Verifies the events of one push stream in order: signature, the `gateway.server_time`
 * bootstrap first (answering this subscribe's request id), then events bound to this
 * device's user and session. The user is learned from the bootstrap when not known.
 */
export class StreamVerifier {
  private first = true;
  private userIdKnown: string | undefined;
  private offset = 0;

  constructor(
    private readonly trusted: TrustedKeys,
    private readonly deviceSessionId: string,
    private readonly requestId: string,
    userId?: string,
  ) {
    this.userIdKnown = userId;
  }

  /** The session's user, given or learned from the bootstrap. */
  get userId(): string | undefined {
    return this.userIdKnown;
  }

  /** Gateway clock minus local clock, from the bootstrap (0 before it). */
  get clockOffsetMs(): number {
    return this.offset;
  }

  /** Verifies the next event; `receivedAt` is the local time it arrived (epoch ms). */
  async verify(message: GatewayEvent, receivedAt: number = Date.now()): Promise<VerifiedEvent> {
    await this.trusted.verify(`event ${message.eventType}`, message.signerKeyId, await eventBytesAsync(message), message.signature);
    const isServerTime = message.eventType === GatewayEventTypes.serverTime;
    if (this.first !== isServerTime) {
      throw new GatewayBindingError(this.first ? `expected ${GatewayEventTypes.serverTime} first, got ${message.eventType}` : `unexpected ${message.eventType} mid-stream`);
    }
    this.first = false;
    const gatewayEvent = message.eventType.startsWith('gateway.');
    if (message.deviceSessionId !== this.deviceSessionId && (gatewayEvent || message.deviceSessionId !== '')) {
      throw new GatewayBindingError(`event for device session "${message.deviceSessionId}" reached session "${this.deviceSessionId}"`);
    }
    let serverTime: VerifiedEvent['serverTime'];
    if (isServerTime) {
      const decoded = decodeServerTime(message.payload);
      if (decoded.requestId !== this.requestId) {
        throw new GatewayBindingError(`bootstrap answers subscribe request "${decoded.requestId}", not "${this.requestId}"`);
      }
      if (this.userIdKnown !== undefined && message.userId !== this.userIdKnown) {
        throw new GatewayBindingError(`bootstrap is for user "${message.userId}", not "${this.userIdKnown}"`);
      }
      this.userIdKnown = message.userId;
      this.offset = decoded.serverTimeMs - receivedAt;
      serverTime = decoded;
    } else if (message.userId !== this.userIdKnown) {
      throw new GatewayBindingError(`event for user "${message.userId}" reached user "${this.userIdKnown ?? ''}"`);
    }
    return {
      eventId: message.eventId,
      eventType: message.eventType,
      userId: message.userId,
      deviceSessionId: message.deviceSessionId,
      timestampMs: message.timestampMs,
      payload: message.payload,
      signerKeyId: message.signerKeyId,
      ...(serverTime === undefined ? {} : { serverTime }),
    };
  }
}
