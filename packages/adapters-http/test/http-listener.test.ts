import { afterEach, describe, expect, it } from 'vitest';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import express from 'express';
import { createPublicApp, listen, parseListenAddress, type HttpListener } from '../src/index.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function started(app: express.Express, address = '127.0.0.1:0'): Promise<HttpListener> {
  const listener = await listen(app, address);
  cleanups.push(() => listener.close(1000));
  return listener;
}

/** GET through `agent`, resolving with the response once its body is read. */
function get(agent: Agent, port: number, path: string): Promise<{ res: IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ res, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('parseListenAddress', () => {
  it.each([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    [':8080', { host: '', port: 8080 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['[::1]:9090', { host: '::1', port: 9090 }],
    ['[::]:65535', { host: '::', port: 65535 }],
  ])('parses %s', (value, expected) => {
    expect(parseListenAddress(value)).toEqual(expected);
  });

  it.each([
    ['', /expected host:port or :port/],
    ['8080', /expected host:port or :port/],
    ['host:', /expected host:port or :port/],
    ['host:http', /expected host:port or :port/],
    ['host:-1', /expected host:port or :port/],
    ['::1:8080', /write IPv6 hosts in brackets/],
    ['[]:8080', /expected host:port or :port/],
    ['host:65536', /port must be between 0 and 65535/],
    ['host:99999', /port must be between 0 and 65535/],
  ])('rejects %j naming the problem', (value, message) => {
    expect(() => parseListenAddress(value)).toThrow(message);
  });
});

describe('listen', () => {
  it('binds port 0 and reports the bound address', async () => {
    const listener = await started(createPublicApp({ readiness: () => 'ready' }));
    expect(listener.host).toBe('127.0.0.1');
    expect(listener.port).toBeGreaterThan(0);
    expect(listener.address).toBe(`127.0.0.1:${listener.port}`);
    const response = await fetch(`http://${listener.address}/healthz`);
    expect(response.status).toBe(200);
  });

  it('await using closes the listener at scope exit: the port refuses connections afterwards', async () => {
    let listener: HttpListener | undefined;
    {
      await using open = await listen(createPublicApp({ readiness: () => 'ready' }), '127.0.0.1:0');
      listener = open;
      expect((await fetch(`http://${open.address}/healthz`)).status).toBe(200);
    }
    await expect(fetch(`http://${listener.address}/healthz`)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    // close() without a budget (the default) after the dispose: the same outcome.
    await expect(listener.close()).resolves.toBe('graceful');
  });

  it(':port listens on all interfaces', async () => {
    const listener = await started(createPublicApp({ readiness: () => 'ready' }), ':0');
    expect(['::', '0.0.0.0']).toContain(listener.host);
    expect((await fetch(`http://127.0.0.1:${listener.port}/healthz`)).status).toBe(200);
  });

  it('rejects clearly when the address is in use', async () => {
    const first = await started(createPublicApp({ readiness: () => 'ready' }));
    await expect(listen(createPublicApp({ readiness: () => 'ready' }), first.address)).rejects.toThrow(
      `cannot listen on ${first.address}: address already in use (EADDRINUSE)`,
    );
  });

  it('rejects an invalid address before binding', async () => {
    await expect(listen(createPublicApp({ readiness: () => 'ready' }), 'nonsense')).rejects.toThrow(/invalid listen address "nonsense"/);
  });

  it('close() ends promptly and gracefully with an idle keep-alive connection open', async () => {
    const listener = await started(createPublicApp({ readiness: () => 'ready' }));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const { res } = await get(agent, listener.port, '/healthz');
    expect(res.statusCode).toBe(200);
    expect(res.headers.connection).toBe('keep-alive');
    const socketsOpen = Object.values(agent.freeSockets).flat().length;
    expect(socketsOpen).toBe(1);

    const startedAt = performance.now();
    await expect(listener.close(10_000)).resolves.toBe('graceful');
    expect(performance.now() - startedAt).toBeLessThan(1000);
    expect(listener.server.listening).toBe(false);
  });

  it('close() lets an in-flight request finish, then closes its connection', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const app = express();
    app.get('/slow', async (_req, res) => {
      entered();
      await released;
      res.json({ done: true });
    });
    const listener = await started(app);
    const agent = new Agent({ keepAlive: true });
    cleanups.push(() => agent.destroy());
    const pending = get(agent, listener.port, '/slow');
    await inHandler;

    const closing = listener.close(10_000);
    release();
    const { res, body } = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.headers.connection).toBe('close');
    expect(JSON.parse(body)).toEqual({ done: true });
    await expect(closing).resolves.toBe('graceful');
  });

  it('close() destroys connections still busy after the budget and reports forced', async () => {
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const app = express();
    app.get('/hang', () => entered());
    const listener = await started(app);
    const agent = new Agent({ keepAlive: true });
    cleanups.push(() => agent.destroy());
    const pending = get(agent, listener.port, '/hang').then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code,
    );
    await inHandler;

    const startedAt = performance.now();
    await expect(listener.close(100)).resolves.toBe('forced');
    const elapsed = performance.now() - startedAt;
    expect(elapsed).toBeGreaterThanOrEqual(90);
    expect(elapsed).toBeLessThan(2000);
    expect(await pending).toBe('ECONNRESET');
  });

  it('close() twice returns the same outcome', async () => {
    const listener = await started(createPublicApp({ readiness: () => 'ready' }));
    const first = listener.close(1000);
    expect(listener.close(1000)).toBe(first);
    await expect(first).resolves.toBe('graceful');
  });
});

describe('time bounds on a connection (issue 12)', () => {
  /** A raw connection that records what the server sends and when it closes. */
  function rawConnection(port: number): { socket: Socket; received: () => string; closed: Promise<number> } {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => undefined);
    const opened = performance.now();
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - opened)));
    return { socket, received: () => text, closed };
  }

  /** Writes `chunk` every `everyMs` until the socket closes. */
  function drip(socket: Socket, chunk: string, everyMs: number): void {
    const timer = setInterval(() => {
      if (socket.destroyed) clearInterval(timer);
      else socket.write(chunk);
    }, everyMs);
    socket.once('close', () => clearInterval(timer));
  }

  const app = () => {
    const a = express();
    a.get('/ok', (_req, res) => res.json({ ok: true }));
    a.post('/body', express.text({ type: () => true }), (_req, res) => res.json({ ok: true }));
    return a;
  };

  it('defaults: 10 s for the headers, 30 s for the whole request, 5 s idle keep-alive', async () => {
    const listener = await started(app());
    expect({
      headers: listener.server.headersTimeout,
      request: listener.server.requestTimeout,
      keepAlive: listener.server.keepAliveTimeout,
    }).toEqual({ headers: 10_000, request: 30_000, keepAlive: 5_000 });
  });

  it.each([
    ['its headers', 'the headers bound', 'GET /ok HTTP/1.1\r\nHost: x\r\n', 'X-Drip: 1\r\n'],
    ['its body one byte at a time', 'the request bound', 'POST /body HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n', 'a'],
  ])('a client dripping %s gets 408 and loses the connection at %s; others are served meanwhile', async (_what, _bound, start, chunk) => {
    const listener = await listen(app(), '127.0.0.1:0', { headersTimeoutMs: 500, requestTimeoutMs: 1000, keepAliveTimeoutMs: 500 });
    cleanups.push(() => listener.close(1000));
    const slow = rawConnection(listener.port);
    slow.socket.write(start);
    drip(slow.socket, chunk, 100);
    const served = await get(new Agent({ keepAlive: false }), listener.port, '/ok');
    expect(served.res.statusCode).toBe(200);
    const ms = await slow.closed;
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408/);
    // The bound plus one check interval (125 ms here), far below Node's default of minutes.
    expect(ms).toBeLessThan(5000);
  });

  it('an idle keep-alive connection is closed after the keep-alive bound', async () => {
    const listener = await listen(app(), '127.0.0.1:0', { headersTimeoutMs: 2000, requestTimeoutMs: 4000, keepAliveTimeoutMs: 300 });
    cleanups.push(() => listener.close(1000));
    const idle = rawConnection(listener.port);
    idle.socket.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    const ms = await idle.closed;
    expect(idle.received()).toMatch(/^HTTP\/1\.1 200/);
    expect(ms).toBeLessThan(2000);
  });
});
