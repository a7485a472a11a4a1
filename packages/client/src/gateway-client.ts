import { sign, type KeyObject } from 'node:crypto';
import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';
import { DeviceClient, type BackoffOptions, type DeviceExecuteOptions, type DeviceSubscribeOptions, type VerifiedCommandResult } from '@edge-gateway/protocol';
import { GrpcDeviceTransport } from './grpc-transport.js';
import { TrustedGatewayKeys, devicePrivateKey, type GatewayPublicKey } from './trusted-keys.js';

export { DEFAULT_CHANNEL_OPTIONS } from './grpc-transport.js';

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

/** Options of `execute()`: the protocol package's `DeviceExecuteOptions`, the same on every transport. */
export type ExecuteOptions = DeviceExecuteOptions;

/** A verified ExecuteCommand result (the protocol package's, shared with the WebSocket client). */
export type CommandResponse = VerifiedCommandResult;

export type { VerifiedEvent } from '@edge-gateway/protocol';

/** Reconnect backoff for `subscribe({ autoReconnect: true })` (the protocol package's, shared with client-web). */
export type { BackoffOptions };

/** Options of `subscribe()`: the protocol package's `DeviceSubscribeOptions`, the same on every transport. */
export type SubscribeOptions = DeviceSubscribeOptions;

/**
 * Device-side client of the EdgeGateway gRPC service: the protocol package's
 * {@link DeviceClient} (signing, verification, session state, resume, reconnects, rate-limit
 * retries) over a {@link GrpcDeviceTransport}, with a Node key (KeyObject or PKCS#8 PEM)
 * signed through node:crypto.
 */
export class GatewayClient extends DeviceClient {
  constructor(options: GatewayClientOptions) {
    const key = devicePrivateKey(options.privateKey);
    super({
      transport: new GrpcDeviceTransport({
        address: options.address,
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
        ...(options.channelOptions === undefined ? {} : { channelOptions: options.channelOptions }),
      }),
      deviceSessionId: options.deviceSessionId,
      ...(options.userId === undefined ? {} : { userId: options.userId }),
      privateKey: (data: Uint8Array) => sign(null, data, key),
      // Checked here, synchronously: a bad key throws TypeError from the constructor.
      gatewayPublicKeys: new TrustedGatewayKeys(options.gatewayPublicKeys).keys,
    });
  }

  /** `await using client = new GatewayClient(…)`: {@link DeviceClient.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
