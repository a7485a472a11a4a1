import { describe, expect, it } from 'vitest';
import {
  FrameTypes,
  GatewayStatusError,
  RateLimitedError,
  StatusCodes,
  WireFormatError,
  decodeAnyStatus,
  decodeStatusWithTrailers,
  encodeStatus,
  encodeStatusWithTrailers,
  reconnectingStream,
  statusError,
  withRateLimitRetries,
} from '@edge-gateway/protocol';

describe('status frames with trailers (0x84, edgegateway.v1.1)', () => {
  it('carry code, message and retry-after-ms; the plain status frame carries code and message only', () => {
    const status = { code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded', retryAfterMs: 37.2 };
    expect(decodeStatusWithTrailers(encodeStatusWithTrailers(status))).toEqual({ ...status, retryAfterMs: 38 });
    expect(decodeAnyStatus(FrameTypes.status, encodeStatus(status))).toEqual({ code: 8, details: 'rate limit exceeded' });
    expect(decodeAnyStatus(FrameTypes.statusWithTrailers, encodeStatusWithTrailers({ code: 14, details: 'é' }))).toEqual({ code: 14, details: 'é' });
  });

  it('skip trailers they do not know and refuse truncated bodies', () => {
    const known = encodeStatusWithTrailers({ code: 8, details: 'x', retryAfterMs: 5 });
    // An unknown trailer (name "zz", value "1") before the known one.
    const body = new Uint8Array([...known.subarray(0, 4), 2, 0x7a, 0x7a, 0, 1, 0x31, ...known.subarray(4)]);
    expect(decodeStatusWithTrailers(body)).toEqual({ code: 8, details: 'x', retryAfterMs: 5 });
    expect(() => decodeStatusWithTrailers(known.subarray(0, 2))).toThrow(WireFormatError);
    expect(() => decodeStatusWithTrailers(known.subarray(0, known.length - 1))).toThrow(WireFormatError);
  });
});

describe('RateLimitedError and withRateLimitRetries', () => {
  it('statusError makes a RateLimitedError for 8 "rate limit exceeded" only', () => {
    const limited = statusError(8, 'rate limit exceeded', 120);
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect(limited).toBeInstanceOf(GatewayStatusError);
    expect(limited).toMatchObject({ code: 8, codeName: 'RESOURCE_EXHAUSTED', details: 'rate limit exceeded', retryAfterMs: 120, name: 'RateLimitedError' });
    expect(statusError(8, 'rate limit exceeded')).toMatchObject({ retryAfterMs: 1000 });
    expect(statusError(8, 'push stream overflowed', 5)).not.toBeInstanceOf(RateLimitedError);
  });

  it('waits each refusal’s retry-after, up to the retries asked for, then throws the last', async () => {
    const waits: number[] = [];
    const sleep = async (ms: number) => (waits.push(ms), true);
    let calls = 0;
    const limitedTwice = () => (++calls <= 2 ? Promise.reject(new RateLimitedError(40 * calls)) : Promise.resolve('ok'));
    await expect(withRateLimitRetries(limitedTwice, { retries: 2, sleep, onAbort: () => new Error('aborted') })).resolves.toBe('ok');
    expect(waits).toEqual([40, 80]);
    calls = 0;
    waits.length = 0;
    await expect(withRateLimitRetries(limitedTwice, { retries: 1, sleep, onAbort: () => new Error('aborted') })).rejects.toMatchObject({ retryAfterMs: 80 });
    expect(waits).toEqual([40]);
  });

  it('does not retry other errors, nor past the deadline; an abort during the wait throws onAbort()', async () => {
    const other = new GatewayStatusError(14, 'replay store unavailable');
    await expect(withRateLimitRetries(() => Promise.reject(other), { retries: 3, onAbort: () => new Error('aborted') })).rejects.toBe(other);
    const limited = new RateLimitedError(500);
    await expect(withRateLimitRetries(() => Promise.reject(limited), { retries: 3, deadlineMs: Date.now() + 100, onAbort: () => new Error('aborted') })).rejects.toBe(limited);
    const controller = new AbortController();
    const aborted = withRateLimitRetries(() => Promise.reject(new RateLimitedError(60_000)), { retries: 1, signal: controller.signal, onAbort: () => new Error('aborted') });
    controller.abort();
    await expect(aborted).rejects.toThrow('aborted');
  });

  it('reconnectingStream waits at least a rate-limited open’s retry-after', async () => {
    const waits: number[] = [];
    let opens = 0;
    const stream = reconnectingStream<string>({
      open: async function* () {
        opens += 1;
        if (opens === 1) throw new RateLimitedError(5000);
        yield 'bootstrap';
      },
      isRetryable: (error) => error instanceof RateLimitedError,
      state: { lastEventId: '' },
      sleep: async (ms) => (waits.push(ms), true),
      random: () => 0,
    });
    await expect(stream.next()).resolves.toEqual({ value: 'bootstrap', done: false });
    expect(waits).toEqual([5000]);
  });
});
