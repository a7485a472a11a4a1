import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import { type Express } from 'express';
import { MetricNames, type GatewayMetrics } from '@edge-gateway/core';
import { MetricsHarness } from '@edge-gateway/core/testing/metrics';
import { listen, type HttpListener } from '../src/index.js';

/** `GatewayMetrics` backed by an in-memory OpenTelemetry SDK, plus a way to read the HTTP counter. */
export function testMetrics(): { metrics: GatewayMetrics; httpRequestCount: (attributes: Record<string, string>) => Promise<number> } {
  const harness = new MetricsHarness();
  return { metrics: harness.metrics, httpRequestCount: (attributes) => harness.value(MetricNames.httpRequests, attributes) };
}

/** Starts `app` on 127.0.0.1:0 and registers its close with `cleanups`. */
export async function serve(app: Express, cleanups: Array<() => Promise<unknown>>): Promise<{ listener: HttpListener; url: string }> {
  const listener = await listen(app, '127.0.0.1:0');
  cleanups.push(() => listener.close(1000));
  return { listener, url: `http://127.0.0.1:${listener.port}` };
}

/** POSTs `body` as JSON (a string body is sent as is). */
export function postJson(url: string, body: unknown, contentType = 'application/json'): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Asserts nothing itself: returns status, content type and parsed JSON body for `expect`. */
export async function read(response: Response): Promise<{ status: number; contentType: string; body: unknown }> {
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', body };
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export type UpstreamHandler = (request: RecordedRequest, res: ServerResponse) => void | Promise<void>;

/** A real HTTP server standing in for the auth service; records every request it gets. */
export class FakeUpstream {
  readonly requests: RecordedRequest[] = [];
  #handler: UpstreamHandler = (_request, res) => {
    res.writeHead(500).end();
  };

  private constructor(
    readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeUpstream> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const upstream = new FakeUpstream(server, `http://127.0.0.1:${port}`);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const recorded: RecordedRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        upstream.requests.push(recorded);
        void Promise.resolve(upstream.#handler(recorded, res)).catch(() => res.destroy());
      });
    });
    return upstream;
  }

  /** Sets how the next requests are answered. */
  respond(handler: UpstreamHandler): void {
    this.#handler = handler;
  }

  /** Answers every request with `status` and `body` as JSON (a string body is sent as is). */
  respondJson(status: number, body: unknown): void {
    this.respond((_request, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A URL on 127.0.0.1 where nothing listens: a port that was just bound and released. */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
