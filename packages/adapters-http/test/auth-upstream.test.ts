import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthUpstreamError } from '@edge-gateway/core';
import { createPublicApp, HttpAuthUpstream } from '../src/index.js';
import { closedPortUrl, FakeUpstream, postJson, read, serve } from './support.js';

const SEND = '/api/v1/public/auth/send-email-code';
const CONFIRM = '/api/v1/public/auth/confirm-email-code';
const KEY = Buffer.alloc(32, 9).toString('base64');
const CONFIRM_BODY = { challenge_id: 'ch-1', code: '123456', client_public_key: KEY };

const cleanups: Array<() => Promise<unknown>> = [];
let upstream: FakeUpstream;

beforeEach(async () => {
  upstream = await FakeUpstream.start();
  cleanups.push(() => upstream.close());
});
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** The public app wired to an `HttpAuthUpstream` pointing at `baseUrl`. */
async function gateway(baseUrl: string = upstream.url, timeoutMs = 2000): Promise<string> {
  const authUpstream = new HttpAuthUpstream({ baseUrl, timeoutMs });
  return (await serve(createPublicApp({ readiness: () => 'ready', authUpstream }), cleanups)).url;
}

function errorBody(code: string, message: string): unknown {
  return { error: { code, message } };
}

describe('public auth routes through HttpAuthUpstream', () => {
  it('POSTs the validated body to the same path and relays a 200 of the right shape', async () => {
    upstream.respondJson(200, { challenge_id: 'ch-42', ignored: true });
    const url = await gateway();
    const result = await read(await postJson(`${url}${SEND}`, { email: 'a@example.com', extra: 'dropped' }));
    expect(result).toMatchObject({ status: 200, body: { challenge_id: 'ch-42' } });
    expect(result.contentType).toMatch(/^application\/json/);
    expect(upstream.requests).toHaveLength(1);
    const [request] = upstream.requests;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe(SEND);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(request?.body ?? '')).toEqual({ email: 'a@example.com' });
  });

  it('relays confirm-email-code', async () => {
    upstream.respondJson(200, { device_session_id: 'ds-1', user_id: 'u-1' });
    const url = await gateway();
    const result = await read(await postJson(`${url}${CONFIRM}`, { ...CONFIRM_BODY, extra: 1 }));
    expect(result).toMatchObject({ status: 200, body: { device_session_id: 'ds-1', user_id: 'u-1' } });
    expect(upstream.requests[0]?.path).toBe(CONFIRM);
    expect(JSON.parse(upstream.requests[0]?.body ?? '')).toEqual(CONFIRM_BODY);
  });

  it.each([
    ['a missing field', { device_session_id: 'ds-1' }],
    ['a non-string field', { device_session_id: 'ds-1', user_id: 7 }],
    ['an empty field', { device_session_id: '', user_id: 'u-1' }],
    ['an array', [{ device_session_id: 'ds-1', user_id: 'u-1' }]],
    ['not JSON', 'hello'],
  ])('an upstream 200 with %s answers 502 bad_gateway', async (_what, body) => {
    upstream.respondJson(200, body);
    const url = await gateway();
    const result = await read(await postJson(`${url}${CONFIRM}`, CONFIRM_BODY));
    expect(result).toMatchObject({ status: 502, body: errorBody('bad_gateway', 'auth upstream returned an invalid response') });
  });

  it.each([400, 404, 409, 422, 429])('an upstream %i with an error envelope passes through with its status', async (status) => {
    upstream.respondJson(status, { error: { code: 'invalid_code', message: 'the code is wrong' } });
    const url = await gateway();
    const result = await read(await postJson(`${url}${CONFIRM}`, CONFIRM_BODY));
    expect(result.status).toBe(status);
    expect(result.contentType).toMatch(/^application\/json/);
    expect(result.body).toEqual(errorBody('invalid_code', 'the code is wrong'));
  });

  it.each([
    ['a 4xx without an envelope', 400, { message: 'nope' }],
    ['a 4xx with a code that is not snake_case', 400, { error: { code: 'Invalid Code', message: 'x' } }],
    ['a 4xx with a non-JSON body', 403, '<html>forbidden</html>'],
    ['a 500', 500, { error: { code: 'internal', message: 'boom' } }],
    ['a 503', 503, { error: { code: 'unavailable', message: 'down' } }],
    ['a 201', 201, { challenge_id: 'ch-1' }],
    ['a 302', 302, ''],
  ])('%s answers 502 bad_gateway', async (_what, status, body) => {
    upstream.respondJson(status, body);
    const url = await gateway();
    const result = await read(await postJson(`${url}${SEND}`, { email: 'a@example.com' }));
    expect(result).toMatchObject({ status: 502, body: errorBody('bad_gateway', 'auth upstream returned an invalid response') });
  });

  it('an unreachable upstream answers 503 service_unavailable', async () => {
    const url = await gateway(await closedPortUrl());
    const result = await read(await postJson(`${url}${SEND}`, { email: 'a@example.com' }));
    expect(result).toMatchObject({ status: 503, body: errorBody('service_unavailable', 'auth upstream is unavailable') });
  });

  it('an upstream slower than the timeout answers 504 gateway_timeout', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    cleanups.push(async () => release());
    upstream.respond(async (_request, res) => {
      await released;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ challenge_id: 'late' }));
    });
    const url = await gateway(upstream.url, 100);
    const started = performance.now();
    const result = await read(await postJson(`${url}${SEND}`, { email: 'a@example.com' }));
    expect(result).toMatchObject({ status: 504, body: errorBody('gateway_timeout', 'auth upstream timed out') });
    expect(performance.now() - started).toBeLessThan(1500);
    expect(upstream.requests).toHaveLength(1);
    release();
  });

  it('an upstream that stalls mid-body also times out', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    cleanups.push(async () => release());
    upstream.respond(async (_request, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"challenge_id":');
      await released;
      res.end('"late"}');
    });
    const url = await gateway(upstream.url, 100);
    const result = await read(await postJson(`${url}${SEND}`, { email: 'a@example.com' }));
    expect(result).toMatchObject({ status: 504, body: errorBody('gateway_timeout', 'auth upstream timed out') });
    release();
  });
});

describe('HttpAuthUpstream', () => {
  it.each([
    ['a base path', '/auth/v2'],
    ['a base path with a trailing slash', '/auth/v2/'],
    ['a trailing slash', '/'],
  ])('joins route paths under %s', async (_what, basePath) => {
    upstream.respondJson(200, { challenge_id: 'c' });
    const client = new HttpAuthUpstream({ baseUrl: `${upstream.url}${basePath}`, timeoutMs: 2000 });
    await expect(client.sendEmailCode({ email: 'a@example.com' })).resolves.toEqual({ challenge_id: 'c' });
    const prefix = basePath.replace(/\/+$/, '');
    expect(upstream.requests[0]?.path).toBe(`${prefix}${SEND}`);
  });

  it('rejects with AuthUpstreamError kinds', async () => {
    const client = new HttpAuthUpstream({ baseUrl: upstream.url, timeoutMs: 2000 });
    upstream.respondJson(418, { error: { code: 'teapot', message: 'short and stout' } });
    await expect(client.sendEmailCode({ email: 'a' })).rejects.toSatisfy(
      (error: unknown) =>
        error instanceof AuthUpstreamError &&
        error.failure.kind === 'rejected' &&
        error.failure.status === 418 &&
        error.failure.code === 'teapot' &&
        error.failure.message === 'short and stout',
    );
    upstream.respondJson(500, {});
    await expect(client.sendEmailCode({ email: 'a' })).rejects.toMatchObject({ failure: { kind: 'bad_response', detail: 'upstream answered 500' } });
    const unreachable = new HttpAuthUpstream({ baseUrl: await closedPortUrl(), timeoutMs: 2000 });
    await expect(unreachable.sendEmailCode({ email: 'a' })).rejects.toMatchObject({ failure: { kind: 'unreachable' } });
  });

  it('refuses an answer body larger than maxResponseBytes', async () => {
    upstream.respondJson(200, { challenge_id: 'x'.repeat(2000) });
    const client = new HttpAuthUpstream({ baseUrl: upstream.url, timeoutMs: 2000, maxResponseBytes: 1000 });
    await expect(client.sendEmailCode({ email: 'a' })).rejects.toMatchObject({ failure: { kind: 'bad_response' } });
  });

  it("rejects with the caller's abort reason when the caller aborts", async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    cleanups.push(async () => release());
    upstream.respond(async (_request, res) => {
      await released;
      res.writeHead(500).end();
    });
    const client = new HttpAuthUpstream({ baseUrl: upstream.url, timeoutMs: 5000 });
    const controller = new AbortController();
    const call = client.sendEmailCode({ email: 'a' }, controller.signal);
    await expect.poll(() => upstream.requests.length).toBe(1);
    const reason = new Error('client left');
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
    release();
  });

  it('uses an injected fetch', async () => {
    const seen: string[] = [];
    const fakeFetch: typeof fetch = async (input) => {
      seen.push(String(input));
      return new Response(JSON.stringify({ device_session_id: 'd', user_id: 'u' }), { status: 200 });
    };
    const client = new HttpAuthUpstream({ baseUrl: 'https://auth.internal/base/', timeoutMs: 100, fetch: fakeFetch });
    await expect(client.confirmEmailCode(CONFIRM_BODY)).resolves.toEqual({ device_session_id: 'd', user_id: 'u' });
    expect(seen).toEqual([`https://auth.internal/base${CONFIRM}`]);
  });

  it.each([
    ['not a URL', 'not a url', /not a valid URL/],
    ['a missing scheme read as one', 'auth:8080', /must use http or https/],
    ['another scheme', 'ftp://auth', /must use http or https/],
    ['credentials', 'http://user:pw@auth', /must not carry credentials/],
    ['a query', 'http://auth/?x=1', /must not carry a query or fragment/],
  ])('refuses a base URL with %s', (_what, baseUrl, message) => {
    expect(() => new HttpAuthUpstream({ baseUrl, timeoutMs: 100 })).toThrow(message);
  });

  it('refuses a non-positive timeout', () => {
    expect(() => new HttpAuthUpstream({ baseUrl: 'http://auth', timeoutMs: 0 })).toThrow(/timeout must be a positive integer/);
  });
});
