import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { DEV, LineProcess } from '@edge-gateway/test-utils/entry-process';
import { localize } from '@edge-gateway/test-utils/gateway-process';

// The browser client in a real headless Chromium from Debian's `chromium` package (installed
// by .ci/run; never a downloaded browser build): the dev mode's demo page signs with WebCrypto
// Ed25519, talks WebSocket to the dev listener and verifies everything it shows.
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let devDir: string;
let profileDir: string;
let dev: LineProcess;
let admin: string;
let browser: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)`);
  devDir = mkdtempSync(join(tmpdir(), 'eg-dev-browser-'));
  dev = new LineProcess(DEV, [], {
    GATEWAY_DEV_DIR: devDir,
    GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
  });
  await dev.waitForLog('development gateway ready', 20_000);
  admin = localize(String(dev.logs.find((l) => l['message'] === 'admin http listener started')?.['address']));
  profileDir = mkdtempSync(join(tmpdir(), 'eg-chromium-profile-'));
  browser = await chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
});

afterAll(async () => {
  await browser?.close();
  await dev?.stop();
  if (profileDir !== undefined) rmSync(profileDir, { recursive: true, force: true });
});

async function post(path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`http://${admin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  expect(res.status).toBeLessThan(300);
  return (await res.json()) as Record<string, unknown>;
}

describe('browser client over WebSocket (headless Chromium, dev mode demo page)', () => {
  it('opens a push stream and shows the verified gateway.server_time bootstrap', async () => {
    await page.goto(`http://${admin}/demo`);
    await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    const bootstrap = page.locator('#events li').first();
    await bootstrap.waitFor({ timeout: 15_000 });
    expect(await bootstrap.getAttribute('data-event-type')).toBe('gateway.server_time');
    expect(await bootstrap.getAttribute('data-verified')).toBe('true');
    expect(await bootstrap.textContent()).toContain('user demo-user');
    // The payload is a ServerTime message, shown decoded (it was printed as UTF-8: mojibake).
    expect(await bootstrap.textContent()).toMatch(/server time \d{4}-\d\d-\d\dT[\d:.]+Z, request \S+ verified$/);
    expect(await page.locator('#stream[data-open="true"]').textContent()).toBe('open');
  });

  it('runs a signed command whose result the page verified', async () => {
    const command = page.locator('#command[data-verified="true"]');
    await command.waitFor({ timeout: 15_000 });
    expect(await command.getAttribute('data-result-code')).toBe('ok');
    expect(await command.textContent()).toContain('"hello from the browser"');
  });

  it('receives a published client event, verified in the page', async () => {
    const published = await post('/dev/events', {
      user_id: 'demo-user',
      event_type: 'demo.hello',
      payload_base64: Buffer.from('pushed to the browser').toString('base64'),
    });
    const entryId = String(published['entry_id']);
    const item = page.locator(`#events li[data-event-id="${entryId}"]`);
    await item.waitFor({ timeout: 15_000 });
    expect(await item.getAttribute('data-event-type')).toBe('demo.hello');
    expect(await item.getAttribute('data-verified')).toBe('true');
    expect(await item.textContent()).toContain('"pushed to the browser"');
  });

  it('sees a revoke as the documented stream end: status FAILED_PRECONDITION "device session is revoked"', async () => {
    await post('/dev/sessions/demo-device/revoke');
    const stream = page.locator('#stream[data-code]');
    await stream.waitFor({ timeout: 15_000 });
    expect(await stream.getAttribute('data-code')).toBe('FAILED_PRECONDITION');
    expect(await stream.getAttribute('data-details')).toBe('device session is revoked');
    expect(pageErrors, pageErrors.join('\n')).toEqual([]);
  });

  it('never shows a refused stream as open (opened again on the revoked session)', async () => {
    await page.reload();
    const stream = page.locator('#stream[data-code]');
    await stream.waitFor({ timeout: 15_000 });
    expect(await stream.getAttribute('data-code')).toBe('FAILED_PRECONDITION');
    expect(await stream.getAttribute('data-open')).toBeNull();
    expect(await page.locator('#events li').count()).toBe(0);
  });

  it('refuses a page from another origin at the handshake (403; the browser reports 1006)', async () => {
    const other = await browser.newPage();
    try {
      // The public listener is another origin than the dev listener serving /v1/ws.
      const publicHttp = localize(String(dev.logs.find((l) => l['message'] === 'public http listener started')?.['address']));
      await other.goto(`http://${publicHttp}/healthz`);
      const outcome = await other.evaluate(
        (url) =>
          new Promise<string>((resolve) => {
            const ws = new WebSocket(url, 'edgegateway.v1');
            ws.onopen = () => resolve('open');
            ws.onclose = (event) => resolve(`closed ${event.code}`);
          }),
        `ws://${admin}/v1/ws`,
      );
      expect(outcome).toBe('closed 1006');
    } finally {
      await other.close();
    }
  });
});
