import type { ExecuteCommandRequest, ExecuteCommandResponse, GatewayEvent as WireGatewayEvent, SubscribeEventsRequest } from '@edge-gateway/protocol';
import type { KeyObject } from 'node:crypto';

/** Status of a device session record (SPEC §5.1). */
export type SessionStatus = 'active' | 'revoked';

/** A parsed, validated device-session record or snapshot (SPEC §5.1, §5.3). */
export interface DeviceSession {
  readonly deviceSessionId: string;
  readonly userId: string;
  readonly status: SessionStatus;
  /** Raw 32-byte Ed25519 public key of the device. */
  readonly clientPublicKey: Uint8Array;
  readonly revokedAtMs?: number;
}

/** A device session together with its parsed public-key object, as the cache holds it. */
export interface ResolvedSession {
  readonly session: DeviceSession;
  readonly publicKey: KeyObject;
}

/** Raw fields of a Redis hash or stream entry. */
export type RawFields = Readonly<Record<string, string>>;

/** One entry of a Redis stream (or any other ordered event source). */
export interface StreamEntry {
  /**
   * Stream id `<ms>-<seq>`, increasing in stream order (see `EventHistory` for why ids stay
   * Redis-shaped for every event source).
   */
  readonly id: string;
  readonly fields: RawFields;
}

// The wire messages are the protocol package's: the core works on exactly the fields a
// transport decodes, under the names of the pipeline.

/** A client-signed ExecuteCommand request (SPEC §2). */
export type CommandRequest = ExecuteCommandRequest;

/** A gateway-signed ExecuteCommand response (SPEC §2). */
export type CommandResult = ExecuteCommandResponse;

/** A client-signed SubscribeEvents request (SPEC §2); `resumeAfterEventId` is empty or a stream id. */
export type SubscribeRequest = SubscribeEventsRequest;

/** A gateway-signed push event (SPEC §2 GatewayEvent). */
export type GatewayEvent = WireGatewayEvent;

/** An event before it is signed. */
export type UnsignedEvent = Omit<GatewayEvent, 'signerKeyId' | 'signature'>;

/** What the gateway sends to a downstream business service (downstream proto). */
export interface DownstreamCommand {
  readonly messageType: string;
  readonly userId: string;
  readonly deviceSessionId: string;
  readonly requestId: string;
  readonly payload: Uint8Array;
}

/** What a downstream business service answers. */
export interface DownstreamResult {
  readonly resultCode: string;
  readonly payload: Uint8Array;
}

/** Reserved event types the gateway itself emits. */
export const GatewayEventTypes = {
  serverTime: 'gateway.server_time',
  resumeIncomplete: 'gateway.resume_incomplete',
} as const;
