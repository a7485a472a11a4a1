import { afterEach, describe, expect, it } from 'vitest';
import { type AuthUpstream, type LogFields, type Logger } from '@edge-gateway/core';
import { createPublicApp, type PublicAppOptions, type Readiness } from '../src/index.js';
import { postJson, read, serve, testMetrics } from './support.js';

const SEND = '/api/v1/public/auth/send-email-code';
const CONFIRM = '/api/v1/public/auth/confirm-email-code';
const KEY = Buffer.alloc(32, 7).toString('base64');

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** An upstream that records what it got and answers fixed values. */
function recordingUpstream(): AuthUpstream & { calls: unknown[] } {
  const calls: unknown[] = [];
  return {
    calls,
    sendEmailCode: async (request) => {
      calls.push(request);
      return { challenge_id: 'ch-1' };
    },
    confirmEmailCode: async (request) => {
      calls.push(request);
      return { device_session_id: 'ds-1', user_id: 'u-1' };
    },
  };
}

async function start(options: Partial<PublicAppOptions> = {}): Promise<string> {
  const app = createPublicApp({ readiness: () => 'ready', ...options });
  return (await serve(app, cleanups)).url;
}

function errorBody(code: string, message: string | ReturnType<typeof expect.any>): unknown {
  return { error: { code, message } };
}

describe('public app: health', () => {
  it('GET /healthz answers 200 {"status":"ok"} as JSON without x-powered-by', async () => {
    const url = await start({ readiness: () => 'starting' });
    const response = await fetch(`${url}/healthz`);
    expect(response.headers.get('x-powered-by')).toBeNull();
    const result = await read(response);
    expect(result.status).toBe(200);
    expect(result.contentType).toMatch(/^application\/json/);
    expect(result.body).toEqual({ status: 'ok' });
  });

  it.each<[Readiness, number]>([
    ['starting', 503],
    ['ready', 200],
    ['shutting_down', 503],
  ])('GET /readyz in state %s answers %i with that status', async (state, status) => {
    const url = await start({ readiness: () => state });
    const result = await read(await fetch(`${url}/readyz`));
    expect(result.status).toBe(status);
    expect(result.contentType).toMatch(/^application\/json/);
    expect(result.body).toEqual({ status: state });
  });

  it('GET /readyz reads readiness on every request', async () => {
    let state: Readiness = 'starting';
    const url = await start({ readiness: () => state });
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    state = 'ready';
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    state = 'shutting_down';
    expect(await read(await fetch(`${url}/readyz`))).toMatchObject({ status: 503, body: { status: 'shutting_down' } });
  });
});

describe('public app: routing errors', () => {
  it('an unknown route answers 404 not_found in the JSON envelope', async () => {
    const url = await start();
    const result = await read(await fetch(`${url}/nope`));
    expect(result.status).toBe(404);
    expect(result.contentType).toMatch(/^application\/json/);
    expect(result.body).toEqual(errorBody('not_found', 'route not found'));
  });

  it('a wrong method on a known route answers 405 method_not_allowed with Allow', async () => {
    const url = await start();
    const post = await fetch(`${url}/healthz`, { method: 'POST' });
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect(await read(post)).toMatchObject({ status: 405, body: errorBody('method_not_allowed', 'method POST not allowed, use GET, HEAD') });
    const get = await fetch(`${url}${SEND}`);
    expect(get.headers.get('allow')).toBe('POST');
    expect(await read(get)).toMatchObject({ status: 405, body: errorBody('method_not_allowed', expect.any(String)) });
  });

  it('an unexpected error answers 500 internal without leaking the error', async () => {
    const url = await start({
      readiness: () => {
        throw new Error('secret internals at /srv/app.js:42');
      },
    });
    const result = await read(await fetch(`${url}/readyz`));
    expect(result.status).toBe(500);
    expect(result.body).toEqual(errorBody('internal', 'internal error'));
    expect(JSON.stringify(result.body)).not.toContain('secret');
  });
});

describe('public app: auth routes', () => {
  it.each([SEND, CONFIRM])('%s answers 503 service_unavailable without an upstream', async (path) => {
    const url = await start();
    const result = await read(await postJson(`${url}${path}`, { email: 'a@example.com' }));
    expect(result.status).toBe(503);
    expect(result.contentType).toMatch(/^application\/json/);
    expect(result.body).toEqual(errorBody('service_unavailable', 'auth upstream is not configured'));
  });

  it('send-email-code forwards only the validated fields and relays the answer', async () => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const result = await read(await postJson(`${url}${SEND}`, { email: 'a@example.com', extra: 1 }));
    expect(result).toMatchObject({ status: 200, body: { challenge_id: 'ch-1' } });
    expect(upstream.calls).toEqual([{ email: 'a@example.com' }]);
  });

  it('confirm-email-code forwards the validated body and relays the answer', async () => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const body = { challenge_id: 'ch-1', code: '123456', client_public_key: KEY };
    const result = await read(await postJson(`${url}${CONFIRM}`, body, 'application/json; charset=utf-8'));
    expect(result).toMatchObject({ status: 200, body: { device_session_id: 'ds-1', user_id: 'u-1' } });
    expect(upstream.calls).toEqual([body]);
  });

  it('bad JSON answers 400 invalid_request', async () => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const result = await read(await postJson(`${url}${SEND}`, '{"email": "a@'));
    expect(result.status).toBe(400);
    expect(result.contentType).toMatch(/^application\/json/);
    expect(result.body).toEqual(errorBody('invalid_request', 'body: invalid JSON'));
    expect(upstream.calls).toEqual([]);
  });

  it.each([
    ['a JSON array', '[]', 'body: must be a JSON object'],
    ['a JSON string', '"x"', 'body: invalid JSON'],
    ['an empty body', '', 'email: required string'],
  ])('a body that is %s answers 400', async (_what, raw, message) => {
    const url = await start({ authUpstream: recordingUpstream() });
    expect(await read(await postJson(`${url}${SEND}`, raw))).toMatchObject({ status: 400, body: errorBody('invalid_request', message) });
  });

  it.each([
    [SEND, {}, 'email: required string'],
    [SEND, { email: 42 }, 'email: required string'],
    [SEND, { email: '' }, 'email: must not be empty'],
    [CONFIRM, { code: '1', client_public_key: KEY }, 'challenge_id: required string'],
    [CONFIRM, { challenge_id: 'c', code: 1, client_public_key: KEY }, 'code: required string'],
    [CONFIRM, { challenge_id: 'c', code: '1' }, 'client_public_key: required string'],
    [CONFIRM, { challenge_id: 'c', code: '1', client_public_key: null }, 'client_public_key: required string'],
  ])('%s with %j answers 400 "%s"', async (path, body, message) => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const result = await read(await postJson(`${url}${path}`, body));
    expect(result).toMatchObject({ status: 400, body: errorBody('invalid_request', message) });
    expect(upstream.calls).toEqual([]);
  });

  it.each([
    ['not base64', '!'.repeat(44)],
    ['31 bytes', Buffer.alloc(31, 1).toString('base64')],
    ['33 bytes', Buffer.alloc(33, 1).toString('base64')],
    ['url-safe alphabet', Buffer.alloc(32, 0xfb).toString('base64url') + '='],
    ['unpadded', KEY.slice(0, 43)],
    ['non-canonical padding bits', KEY.slice(0, 42) + 'd='],
  ])('client_public_key that is %s answers 400', async (_what, key) => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const result = await read(await postJson(`${url}${CONFIRM}`, { challenge_id: 'c', code: '1', client_public_key: key }));
    expect(result).toMatchObject({
      status: 400,
      body: errorBody('invalid_request', 'client_public_key: must be standard base64 of exactly 32 bytes'),
    });
    expect(upstream.calls).toEqual([]);
  });

  it.each([
    ['the all-zero key (order 4)', Buffer.alloc(32)],
    ['the identity', Buffer.from('01'.padEnd(64, '0'), 'hex')],
    ['a point of order 8 with the sign bit set', Buffer.from('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', 'hex')],
  ])('client_public_key that is %s (a small-order point) answers 400', async (_what, raw) => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const result = await read(await postJson(`${url}${CONFIRM}`, { challenge_id: 'c', code: '1', client_public_key: raw.toString('base64') }));
    expect(result).toMatchObject({
      status: 400,
      body: errorBody('invalid_request', 'client_public_key: must not be a small-order Ed25519 point'),
    });
    expect(upstream.calls).toEqual([]);
  });

  it('a body over 64 KiB answers 413 payload_too_large', async () => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const body = JSON.stringify({ email: 'a'.repeat(64 * 1024) });
    const result = await read(await postJson(`${url}${SEND}`, body));
    expect(result.status).toBe(413);
    expect(result.contentType).toMatch(/^application\/json/);
    expect(result.body).toEqual(errorBody('payload_too_large', 'request body exceeds 65536 bytes'));
    expect(upstream.calls).toEqual([]);
  });

  it('a body of exactly 64 KiB is accepted', async () => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const skeleton = JSON.stringify({ email: '' });
    const body = JSON.stringify({ email: 'a'.repeat(64 * 1024 - skeleton.length) });
    expect(Buffer.byteLength(body)).toBe(64 * 1024);
    expect((await postJson(`${url}${SEND}`, body)).status).toBe(200);
  });

  it('a chunked body over the limit answers 413 too', async () => {
    const url = await start({ authUpstream: recordingUpstream(), bodyLimitBytes: 1024 });
    const chunk = new TextEncoder().encode(`{"email":"${'a'.repeat(2048)}"}`);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const response = await fetch(`${url}${SEND}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(await read(response)).toMatchObject({ status: 413, body: errorBody('payload_too_large', 'request body exceeds 1024 bytes') });
  });

  it.each([
    ['text/plain', 'text/plain'],
    ['form', 'application/x-www-form-urlencoded'],
    ['missing', undefined],
  ])('a %s content type answers 415 unsupported_media_type', async (_what, contentType) => {
    const upstream = recordingUpstream();
    const url = await start({ authUpstream: upstream });
    const headers: Record<string, string> = contentType === undefined ? {} : { 'content-type': contentType };
    const response = await fetch(`${url}${SEND}`, {
      method: 'POST',
      headers,
      body: contentType === undefined ? new Uint8Array(Buffer.from('{"email":"a@example.com"}')) : '{"email":"a@example.com"}',
    });
    const result = await read(response);
    expect(result.status).toBe(415);
    expect(result.contentType).toMatch(/^application\/json/);
    expect(result.body).toEqual(errorBody('unsupported_media_type', 'content type must be application/json'));
    expect(upstream.calls).toEqual([]);
  });

  it('an unsupported charset answers 415', async () => {
    const url = await start({ authUpstream: recordingUpstream() });
    const result = await read(await postJson(`${url}${SEND}`, { email: 'a' }, 'application/json; charset=latin1'));
    expect(result).toMatchObject({ status: 415, body: errorBody('unsupported_media_type', expect.any(String)) });
  });

  it('aborts the upstream call when the client goes away', async () => {
    let seen: AbortSignal | undefined;
    let entered!: () => void;
    const called = new Promise<void>((resolve) => (entered = resolve));
    const upstream: AuthUpstream = {
      sendEmailCode: (_request, signal) => {
        seen = signal;
        entered();
        return new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
      },
      confirmEmailCode: () => Promise.reject(new Error('unused')),
    };
    const url = await start({ authUpstream: upstream });
    const client = new AbortController();
    const request = fetch(`${url}${SEND}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"email":"b@example.com"}',
      signal: client.signal,
    }).catch((error: unknown) => error);
    await called;
    client.abort();
    await request;
    await expect.poll(() => seen?.aborted, { timeout: 2000 }).toBe(true);
  });
});

describe('public app: metrics', () => {
  it('counts gateway_http_requests_total by listener, route pattern and status', async () => {
    const { metrics, httpRequestCount } = testMetrics();
    const url = await start({ metrics, readiness: () => 'starting' });
    await (await fetch(`${url}/healthz`)).text();
    await (await fetch(`${url}/healthz`)).text();
    await (await fetch(`${url}/readyz`)).text();
    await (await fetch(`${url}/some/random/path`)).text();
    await (await fetch(`${url}/other`)).text();
    await (await postJson(`${url}${SEND}`, { email: 'a' })).text();

    // Counted when the server sees the response close: wait for the last one.
    await expect.poll(() => httpRequestCount({ listener: 'public', route: SEND, status: '503' })).toBe(1);
    expect(await httpRequestCount({ listener: 'public', route: '/healthz', status: '200' })).toBe(2);
    expect(await httpRequestCount({ listener: 'public', route: '/readyz', status: '503' })).toBe(1);
    expect(await httpRequestCount({ listener: 'public', route: 'not_found', status: '404' })).toBe(2);
    expect(await httpRequestCount({ route: '/some/random/path' })).toBe(0);
  });
});

describe('public app: logs', () => {
  it('logs each request at debug with method, route, status and duration, never the body', async () => {
    const lines: Array<{ level: string; message: string; fields: LogFields }> = [];
    const logger = (bound: LogFields): Logger => ({
      error: (message, fields) => lines.push({ level: 'error', message, fields: { ...bound, ...fields } }),
      warn: (message, fields) => lines.push({ level: 'warn', message, fields: { ...bound, ...fields } }),
      info: (message, fields) => lines.push({ level: 'info', message, fields: { ...bound, ...fields } }),
      debug: (message, fields) => lines.push({ level: 'debug', message, fields: { ...bound, ...fields } }),
      child: (fields) => logger({ ...bound, ...fields }),
    });
    const url = await start({ logger: logger({}), authUpstream: recordingUpstream() });
    await (await postJson(`${url}${SEND}`, { email: 'secret@example.com' })).text();
    await (await fetch(`${url}/private/path?token=abc`)).text();

    await expect.poll(() => lines.filter((line) => line.message === 'http request').length).toBe(2);
    const [sent, missing] = lines.filter((line) => line.message === 'http request');
    expect(sent).toMatchObject({
      level: 'debug',
      fields: { component: 'public-http', method: 'POST', route: SEND, status: 200, duration_ms: expect.any(Number) },
    });
    expect(missing).toMatchObject({ level: 'debug', fields: { method: 'GET', route: 'not_found', status: 404 } });
    const logged = JSON.stringify(lines);
    expect(logged).not.toContain('secret@example.com');
    expect(logged).not.toContain('token');
    expect(logged).not.toContain('/private/path');
  });
});
