import {
  AuthUpstreamError,
  type AuthUpstream,
  type ConfirmEmailCodeRequest,
  type ConfirmEmailCodeResponse,
  type SendEmailCodeRequest,
  type SendEmailCodeResponse,
} from '@edge-gateway/core';
import { PublicRoutes } from './public-routes.js';

/** Default bound on one auth upstream call (`GATEWAY_AUTH_UPSTREAM_TIMEOUT`). */
export const DEFAULT_AUTH_UPSTREAM_TIMEOUT_MS = 5000;

/** Default cap on an upstream answer body; a larger one is a `bad_response`. */
export const DEFAULT_MAX_UPSTREAM_RESPONSE_BYTES = 64 * 1024;

export interface HttpAuthUpstreamOptions {
  /** Base URL of the auth service (`http`/`https`, may carry a base path). */
  readonly baseUrl: string;
  /** Bound on one call, from sending the request to reading the whole answer (default {@link DEFAULT_AUTH_UPSTREAM_TIMEOUT_MS}). */
  readonly timeoutMs?: number;
  /** Defaults to the global `fetch`; tests and embedders may pass their own. */
  readonly fetch?: typeof fetch;
  /** Largest accepted answer body in bytes (default 64 KiB). */
  readonly maxResponseBytes?: number;
}

const SNAKE_CASE = /^[a-z][a-z0-9_]*$/;

class ResponseTooLarge extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Picks the named non-empty string fields of a 200 answer, or undefined if the shape is wrong. */
function pickStrings<K extends string>(value: unknown, fields: readonly K[]): Record<K, string> | undefined {
  if (!isRecord(value)) return undefined;
  const picked = {} as Record<K, string>;
  for (const field of fields) {
    const fieldValue = value[field];
    if (typeof fieldValue !== 'string' || fieldValue.length === 0) return undefined;
    picked[field] = fieldValue;
  }
  return picked;
}

/** The `{"error":{"code","message"}}` envelope of a 4xx answer, or undefined. */
function parseEnvelope(value: unknown): { code: string; message: string } | undefined {
  if (!isRecord(value) || !isRecord(value.error)) return undefined;
  const { code, message } = value.error;
  if (typeof code !== 'string' || !SNAKE_CASE.test(code) || typeof message !== 'string') return undefined;
  return { code, message };
}

async function readBody(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw new ResponseTooLarge();
  }
  if (response.body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > maxBytes) throw new ResponseTooLarge(); // leaving the loop cancels the stream
    chunks.push(chunk);
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
}

function badResponse(detail: string, cause?: unknown): AuthUpstreamError {
  return new AuthUpstreamError({ kind: 'bad_response', detail }, { cause });
}

/**
 * `AuthUpstream` over HTTP (SPEC §6): POSTs the validated JSON body to the same path under
 * `baseUrl` and maps the outcome. A connection failure is `unreachable`, the `timeoutMs`
 * bound `timeout`, a 4xx with an error envelope `rejected` (status, code and message kept),
 * a 200 of the expected shape the answer (unknown fields dropped), anything else
 * (5xx, 3xx, non-JSON, a 4xx without envelope, a 200 of the wrong shape) `bad_response`.
 * If the caller's `signal` aborts, the call rejects with that signal's reason.
 */
export class HttpAuthUpstream implements AuthUpstream {
  readonly #origin: string;
  readonly #basePath: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #maxResponseBytes: number;

  constructor(options: HttpAuthUpstreamOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new TypeError(`auth upstream URL is not a valid URL: ${JSON.stringify(options.baseUrl)}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new TypeError(`auth upstream URL must use http or https, got ${base.protocol}`);
    }
    if (base.username !== '' || base.password !== '') {
      throw new TypeError('auth upstream URL must not carry credentials');
    }
    if (base.search !== '' || base.hash !== '') {
      throw new TypeError('auth upstream URL must not carry a query or fragment');
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_AUTH_UPSTREAM_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(`auth upstream timeout must be a positive integer of milliseconds, got ${timeoutMs}`);
    }
    const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_UPSTREAM_RESPONSE_BYTES;
    if (!Number.isInteger(maxResponseBytes) || maxResponseBytes <= 0) {
      throw new RangeError(`auth upstream maxResponseBytes must be a positive integer, got ${maxResponseBytes}`);
    }
    this.#origin = base.origin;
    // The base path without its trailing slash, so that route paths append cleanly.
    this.#basePath = base.pathname.replace(/\/+$/, '');
    this.#timeoutMs = timeoutMs;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#maxResponseBytes = maxResponseBytes;
  }

  /** The absolute URL a route path is POSTed to. */
  urlFor(path: string): string {
    return `${this.#origin}${this.#basePath}${path}`;
  }

  async sendEmailCode(request: SendEmailCodeRequest, signal?: AbortSignal): Promise<SendEmailCodeResponse> {
    const body: SendEmailCodeRequest = { email: request.email };
    return this.#post(PublicRoutes.sendEmailCode, body, (value) => pickStrings(value, ['challenge_id']), signal);
  }

  async confirmEmailCode(request: ConfirmEmailCodeRequest, signal?: AbortSignal): Promise<ConfirmEmailCodeResponse> {
    const body: ConfirmEmailCodeRequest = {
      challenge_id: request.challenge_id,
      code: request.code,
      client_public_key: request.client_public_key,
    };
    return this.#post(
      PublicRoutes.confirmEmailCode,
      body,
      (value) => pickStrings(value, ['device_session_id', 'user_id']),
      signal,
    );
  }

  async #post<T>(path: string, body: unknown, shape: (value: unknown) => T | undefined, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([timeout, signal]);
    const aborted = (error: unknown): unknown => {
      if (signal?.aborted) return signal.reason as unknown;
      if (timeout.aborted) return new AuthUpstreamError({ kind: 'timeout' }, { cause: error });
      return undefined;
    };

    let response: Response;
    try {
      response = await this.#fetch(this.urlFor(path), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: combined,
        redirect: 'manual',
      });
    } catch (error) {
      throw aborted(error) ?? new AuthUpstreamError({ kind: 'unreachable' }, { cause: error });
    }

    const { status } = response;
    if (status !== 200 && (status < 400 || status > 499)) {
      await response.body?.cancel().catch(() => undefined);
      throw badResponse(`upstream answered ${status}`);
    }
    let text: string;
    try {
      text = await readBody(response, this.#maxResponseBytes);
    } catch (error) {
      const abort = aborted(error);
      if (abort !== undefined) throw abort;
      if (error instanceof ResponseTooLarge) throw badResponse(`upstream ${status} body exceeds ${this.#maxResponseBytes} bytes`);
      throw badResponse(`upstream ${status} body could not be read`, error);
    }
    const json = parseJson(text);

    if (status === 200) {
      const answer = shape(json);
      if (answer === undefined) throw badResponse('upstream 200 body has the wrong shape');
      return answer;
    }
    const envelope = parseEnvelope(json);
    if (envelope === undefined) throw badResponse(`upstream answered ${status} without an error envelope`);
    throw new AuthUpstreamError({ kind: 'rejected', status, code: envelope.code, message: envelope.message });
  }
}
