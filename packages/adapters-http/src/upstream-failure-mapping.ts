import { type AuthUpstreamFailure } from '@edge-gateway/core';
import { HttpErrorCode, httpErrorStatus } from './error-envelope.js';

/** An HTTP answer to the client: status and envelope fields. */
export interface HttpErrorAnswer {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

/** Client-facing messages for auth upstream failures. */
export const UpstreamMessages = {
  notConfigured: 'auth upstream is not configured',
  unreachable: 'auth upstream is unavailable',
  timeout: 'auth upstream timed out',
  badResponse: 'auth upstream returned an invalid response',
} as const;

function answer(code: HttpErrorCode, message: string): HttpErrorAnswer {
  return { status: httpErrorStatus[code], code, message };
}

/**
 * Maps an auth upstream failure to the client answer of SPEC §6: unreachable → 503,
 * timeout → 504, a 4xx envelope passes through with its status, anything else → 502.
 */
export function mapUpstreamFailure(failure: AuthUpstreamFailure): HttpErrorAnswer {
  switch (failure.kind) {
    case 'unreachable':
      return answer(HttpErrorCode.ServiceUnavailable, UpstreamMessages.unreachable);
    case 'timeout':
      return answer(HttpErrorCode.GatewayTimeout, UpstreamMessages.timeout);
    case 'rejected':
      // Only a 4xx envelope is passed through; a custom AuthUpstream reporting anything
      // else is treated as a bad response rather than trusted.
      if (Number.isInteger(failure.status) && failure.status >= 400 && failure.status <= 499) {
        return { status: failure.status, code: failure.code, message: failure.message };
      }
      return answer(HttpErrorCode.BadGateway, UpstreamMessages.badResponse);
    case 'bad_response':
      return answer(HttpErrorCode.BadGateway, UpstreamMessages.badResponse);
  }
}
