import { describe, expect, it } from 'vitest';
import type * as errors from './errors.js';
import { GatewayError, GatewayErrorCode, GatewayMessages, isGatewayError } from './errors.js';

describe('GatewayError', () => {
  it('has every code of the gateway, in snake_case', () => {
    expect(GatewayErrorCode).toEqual({
      InvalidArgument: 'invalid_argument',
      Unauthenticated: 'unauthenticated',
      FailedPrecondition: 'failed_precondition',
      AlreadyExists: 'already_exists',
      Unimplemented: 'unimplemented',
      Unavailable: 'unavailable',
      DeadlineExceeded: 'deadline_exceeded',
      ResourceExhausted: 'resource_exhausted',
      Internal: 'internal',
    });
  });

  it('a complete Record<GatewayErrorCode, …> table compiles and covers every code', () => {
    const table: Record<GatewayErrorCode, number> = {
      invalid_argument: 3,
      unauthenticated: 16,
      failed_precondition: 9,
      already_exists: 6,
      unimplemented: 12,
      unavailable: 14,
      deadline_exceeded: 4,
      resource_exhausted: 8,
      internal: 13,
    };
    expect(Object.keys(table).sort()).toEqual(Object.values(GatewayErrorCode).sort());
  });

  it('carries the exact messages of SPEC §4 and §8.3', () => {
    expect(GatewayMessages).toMatchObject({
      staleRequest: 'request timestamp is outside the freshness window',
      unknownSession: 'unknown device session',
      sessionRevoked: 'device session is revoked',
      invalidSignature: 'invalid request signature',
      replay: 'request_id was already used',
      sessionStoreUnavailable: 'session store unavailable',
      replayStoreUnavailable: 'replay store unavailable',
      downstreamFailed: 'downstream command failed',
      shuttingDown: 'gateway is shutting down',
      overflow: 'push stream overflowed',
    });
    expect(GatewayMessages.noRoute('chat.send')).toBe('no route for message type chat.send');
  });

  it.each([
    [GatewayError.invalidArgument('x: y'), 'invalid_argument', 'x: y'],
    [GatewayError.unauthenticated('nope'), 'unauthenticated', 'nope'],
    [GatewayError.failedPrecondition('pre'), 'failed_precondition', 'pre'],
    [GatewayError.unavailable('down'), 'unavailable', 'down'],
    [GatewayError.internal('boom'), 'internal', 'boom'],
    [GatewayError.shuttingDown(), 'unavailable', 'gateway is shutting down'],
    [GatewayError.revoked(), 'failed_precondition', 'device session is revoked'],
    [GatewayError.overflow(), 'resource_exhausted', 'push stream overflowed'],
  ] as const)('factory %#: %s', (error, code, message) => {
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('GatewayError');
    expect(error.code).toBe(code);
    expect(error.message).toBe(message);
    expect(isGatewayError(error)).toBe(true);
  });

  it('passes the cause through and isGatewayError rejects other errors', () => {
    const cause = new Error('socket closed');
    expect(GatewayError.unavailable('session store unavailable', cause).cause).toBe(cause);
    expect(new GatewayError('internal', 'x').cause).toBeUndefined();
    expect(isGatewayError(new Error('x'))).toBe(false);
    expect(isGatewayError({ code: 'internal', message: 'x' })).toBe(false);
  });

  it('recognises a GatewayError made by a second copy of the package (an adapter that resolved its own core)', async () => {
    // The built module is a different module instance from this source file: a second copy.
    const other = (await import(new URL('../dist/errors.js', import.meta.url).href)) as typeof errors;
    expect(other.GatewayError).not.toBe(GatewayError);
    const foreign = other.GatewayError.revoked();
    expect(foreign instanceof GatewayError).toBe(true);
    expect(isGatewayError(foreign)).toBe(true);
    expect(GatewayError.unavailable('x') instanceof other.GatewayError).toBe(true);
    expect(other.isGatewayError(GatewayError.overflow())).toBe(true);
    // The brand alone is not enough: the code must be one of the gateway's.
    const forged = Object.assign(new Error('x'), { [Symbol.for('@edge-gateway/core.GatewayError')]: true, code: 'teapot' });
    expect(isGatewayError(forged)).toBe(false);
    expect(new Error('x') instanceof GatewayError).toBe(false);
  });
});
