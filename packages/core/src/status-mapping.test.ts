import { describe, expect, it } from 'vitest';
import { httpStatusFor, statusName, StatusCodes } from '@edge-gateway/protocol';
import { GatewayError, GatewayErrorCode } from './errors.js';
import { statusCodeFor, toCallStatus } from './status-mapping.js';

describe('the one error -> status mapping', () => {
  it('maps every core code to the status of the same name', () => {
    for (const code of Object.values(GatewayErrorCode)) expect(statusName(statusCodeFor[code]).toLowerCase()).toBe(code);
    expect(Object.isFrozen(statusCodeFor)).toBe(true);
  });

  it('answers a GatewayError with its code and message, a rate-limited one with its retry-after', () => {
    expect(toCallStatus(GatewayError.revoked())).toEqual({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
    expect(toCallStatus(GatewayError.rateLimited(250))).toEqual({ code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded', retryAfterMs: 250 });
  });

  it('answers anything else INTERNAL internal error, never its message', () => {
    expect(toCallStatus(new Error('ECONNREFUSED 10.0.0.7:6379'))).toEqual({ code: StatusCodes.INTERNAL, details: 'internal error' });
    expect(toCallStatus('boom')).toEqual({ code: StatusCodes.INTERNAL, details: 'internal error' });
  });

  it('gives every status an HTTP status (google.rpc.Code mapping)', () => {
    expect(Object.keys(httpStatusFor).map(Number).sort((a, b) => a - b)).toEqual(Object.values(StatusCodes).sort((a, b) => a - b));
    expect(Object.fromEntries(Object.values(GatewayErrorCode).map((code) => [code, httpStatusFor[statusCodeFor[code]]]))).toEqual({
      invalid_argument: 400,
      unauthenticated: 401,
      failed_precondition: 400,
      already_exists: 409,
      unimplemented: 501,
      unavailable: 503,
      deadline_exceeded: 504,
      resource_exhausted: 429,
      internal: 500,
    });
  });
});
