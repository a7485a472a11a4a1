import { afterEach, describe, expect, it } from 'vitest';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { GatewayMetrics } from '@edge-gateway/core';
import { createAdminApp, createPublicApp } from '../src/index.js';
import { read, serve, testMetrics } from './support.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const EXPOSITION = '# HELP gateway_replay_rejections_total x\n# TYPE gateway_replay_rejections_total counter\ngateway_replay_rejections_total 3\n';

describe('admin app', () => {
  it('GET /metrics delegates to the metrics handler and counts admin requests', async () => {
    const { metrics, httpRequestCount } = testMetrics();
    const calls: string[] = [];
    const metricsHandler = (req: IncomingMessage, res: ServerResponse): void => {
      calls.push(`${req.method} ${req.url}`);
      res.statusCode = 200;
      res.setHeader('content-type', 'text/plain; version=0.0.4');
      res.end(EXPOSITION);
    };
    const { url } = await serve(createAdminApp({ metricsHandler, metrics }), cleanups);

    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    expect(response.headers.get('x-powered-by')).toBeNull();
    expect(await response.text()).toBe(EXPOSITION);
    expect(calls).toEqual(['GET /metrics']);

    await (await fetch(`${url}/nothing`)).text();
    // Counted when the server sees the response close: wait for the last one.
    await expect.poll(() => httpRequestCount({ listener: 'admin', route: 'not_found', status: '404' })).toBe(1);
    expect(await httpRequestCount({ listener: 'admin', route: '/metrics', status: '200' })).toBe(1);
    expect(await httpRequestCount({ listener: 'public' })).toBe(0);
  });

  it('answers 404 not_found in the envelope for any other path, 405 for another method', async () => {
    let called = 0;
    const { url } = await serve(
      createAdminApp({
        metricsHandler: (_req, res) => {
          called += 1;
          res.end();
        },
      }),
      cleanups,
    );
    for (const path of ['/', '/healthz/x', '/metrics/x']) {
      const result = await read(await fetch(`${url}${path}`));
      expect(result.status).toBe(404);
      expect(result.contentType).toMatch(/^application\/json/);
      expect(result.body).toEqual({ error: { code: 'not_found', message: 'route not found' } });
    }
    const post = await read(await fetch(`${url}/metrics`, { method: 'POST' }));
    expect(post).toMatchObject({ status: 405, body: { error: { code: 'method_not_allowed' } } });
    const postHealthz = await fetch(`${url}/healthz`, { method: 'POST' });
    expect(postHealthz.status).toBe(405);
    expect(postHealthz.headers.get('allow')).toBe('GET, HEAD');
    expect(called).toBe(0);
  });

  it('GET /healthz answers 200 {"status":"ok"} (liveness on the uncapped listener), counted as the admin /healthz route', async () => {
    const { metrics, httpRequestCount } = testMetrics();
    const { url } = await serve(createAdminApp({ metricsHandler: (_req, res) => res.end(), metrics }), cleanups);
    const response = await fetch(`${url}/healthz`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.text()).toBe('{"status":"ok"}');
    await expect.poll(() => httpRequestCount({ listener: 'admin', route: '/healthz', status: '200' })).toBe(1);
  });

  it('a throwing metrics handler answers 500 internal', async () => {
    const { url } = await serve(
      createAdminApp({
        metricsHandler: () => {
          throw new Error('exporter broke');
        },
      }),
      cleanups,
    );
    const result = await read(await fetch(`${url}/metrics`));
    expect(result).toMatchObject({ status: 500, body: { error: { code: 'internal', message: 'internal error' } } });
  });
});

describe('admin app with the OpenTelemetry Prometheus exporter', () => {
  it('exposes gateway_http_requests_total of both listeners in the text format', async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter] });
    cleanups.push(() => provider.shutdown());
    const metrics = new GatewayMetrics(provider.getMeter('t'));
    const admin = await serve(
      createAdminApp({ metricsHandler: exporter.getMetricsRequestHandler.bind(exporter), metrics }),
      cleanups,
    );
    const pub = await serve(createPublicApp({ readiness: () => 'starting', metrics }), cleanups);
    await (await fetch(`${pub.url}/healthz`)).text();
    await (await fetch(`${pub.url}/readyz`)).text();

    const scrape = async (): Promise<string> => {
      const response = await fetch(`${admin.url}/metrics`);
      expect(response.status).toBe(200);
      return response.text();
    };
    // The exporter may add its own labels (otel_scope_name) after ours. Requests are counted
    // when the server sees their response close, so wait for the last one.
    await expect.poll(scrape).toMatch(/^gateway_http_requests_total\{listener="public",route="\/readyz",status="503"[^}]*\} 1$/m);
    const text = await scrape();
    expect(text).toContain('# TYPE gateway_http_requests_total counter');
    expect(text).toMatch(/^gateway_http_requests_total\{listener="public",route="\/healthz",status="200"[^}]*\} 1$/m);
    // A scrape is counted once it is answered, so a later scrape shows it.
    await expect
      .poll(scrape)
      .toMatch(/^gateway_http_requests_total\{listener="admin",route="\/metrics",status="200"[^}]*\} [1-9]\d*$/m);
  });
});
