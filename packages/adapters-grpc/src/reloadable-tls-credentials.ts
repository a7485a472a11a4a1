import { ServerCredentials } from '@grpc/grpc-js';
import type { TlsKeyPair } from '@edge-gateway/core/node';

/** A certificate chain and its private key, PEM (the type of `@edge-gateway/core/node`). */
export type { TlsKeyPair };

/**
 * Server TLS credentials whose certificate can be replaced while the server runs: grpc-js
 * hands the new context to its http2 server's `setSecureContext`, so connections made from
 * then on get the new certificate and open ones keep theirs. No client certificates are asked.
 */
export class ReloadableTlsCredentials extends ServerCredentials {
  /** `handshakeTimeoutMs`: Node's `handshakeTimeout` (time between handshake bytes); default Node's 120 s. */
  constructor(pair: TlsKeyPair, options: { readonly handshakeTimeoutMs?: number | undefined } = {}) {
    super(
      { requestCert: false, ...(options.handshakeTimeoutMs === undefined ? {} : { handshakeTimeout: options.handshakeTimeoutMs }) },
      { cert: [pair.cert], key: [pair.key] },
    );
  }

  /** Serves `pair` to new connections. */
  replace(pair: TlsKeyPair): void {
    this.updateSecureContextOptions({ cert: [pair.cert], key: [pair.key] });
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}
