import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DEMO_DEVICE, type DevKeys } from './dev-files.js';

/** The browser demo's routes on the dev admin listener. */
export const DEMO_ROUTES = ['GET /demo', 'GET /demo/config.json', 'GET /demo/modules/:package/:file.js'] as const;

// The browser loads the two packages' built ES modules as they are (no bundler): the page
// maps the bare specifier `@edge-gateway/protocol` to the served copy.
const require = createRequire(import.meta.url);
const MODULE_DIRS: Readonly<Record<string, string>> = {
  protocol: dirname(require.resolve('@edge-gateway/protocol')),
  'client-web': dirname(require.resolve('@edge-gateway/client-web')),
};
const MODULE_FILE = /^\/demo\/modules\/(protocol|client-web)\/([a-z0-9-]+\.js)$/;

/** What the page needs: the demo device (its key, development only) and the trusted gateway key. */
export interface DemoConfig {
  readonly deviceSessionId: string;
  readonly userId: string;
  /** PKCS#8 DER of the demo device's key, base64 (the same key as `.dev/demo-device.pem`). */
  readonly devicePrivateKeyPkcs8: string;
  readonly gatewayPublicKey: string;
}

function pemBody(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
}

/**
 * A request handler for the browser demo (development mode only): a page that connects over
 * WebSocket to the dev listener's `/v1/ws`, opens a push stream, runs a signed `echo.demo`
 * command and lists every verified event, plus the modules and config it loads. Returns
 * false when the path is not a demo route.
 */
export function createDemoPage(keys: DevKeys): (req: IncomingMessage, res: ServerResponse) => boolean {
  const config: DemoConfig = {
    deviceSessionId: DEMO_DEVICE.deviceSessionId,
    userId: DEMO_DEVICE.userId,
    devicePrivateKeyPkcs8: pemBody(keys.demoDevice.pem),
    gatewayPublicKey: keys.signer.publicKeyRaw.toString('base64'),
  };
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://dev').pathname;
    if (path !== '/demo' && !path.startsWith('/demo/')) return false;
    if (req.method !== 'GET') {
      res.writeHead(405, { 'Content-Type': 'text/plain' }).end('use GET');
      return true;
    }
    if (path === '/demo' || path === '/demo/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(DEMO_HTML);
      return true;
    }
    if (path === '/demo/config.json') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(config));
      return true;
    }
    const match = MODULE_FILE.exec(path);
    if (match !== null) {
      try {
        const source = readFileSync(join(MODULE_DIRS[match[1] as string] as string, match[2] as string));
        res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(source);
      } catch {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such module');
      }
      return true;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such demo route');
    return true;
  };
}

const DEMO_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>edge-gateway browser demo</title>
<link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "@edge-gateway/protocol": "/demo/modules/protocol/index.js" } }</script>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; max-width: 60em; }
  code, li { font-family: ui-monospace, monospace; }
  .error { color: #b00020; }
</style>
</head>
<body>
<h1>edge-gateway: browser client over WebSocket</h1>
<p>State: <strong id="state">starting</strong></p>
<p>Command <code>echo.demo</code>: <span id="command">not run</span>
  <button id="run" disabled>run a signed command</button></p>
<p>Push stream: <span id="stream">not open</span></p>
<h2>Verified events</h2>
<ol id="events"></ol>
<script type="module">
import { WebGatewayClient, importDevicePrivateKey } from '/demo/modules/client-web/index.js';
import { decodeServerTime, fromBase64 } from '@edge-gateway/protocol';

const $ = (id) => document.getElementById(id);
const text = (bytes) => new TextDecoder().decode(bytes);
// The bootstrap's payload is a protobuf ServerTime, not text; other payloads are shown as UTF-8.
const describePayload = (event) => {
  if (event.eventType !== 'gateway.server_time') return '"' + text(event.payload) + '"';
  const time = decodeServerTime(event.payload);
  return 'server time ' + new Date(Number(time.serverTimeMs)).toISOString() + ', request ' + time.requestId;
};
const state = (value) => { $('state').textContent = value; $('state').dataset.state = value; };

async function runCommand(client) {
  // A per-call deadline (SPEC §2.2): past it the call ends DEADLINE_EXCEEDED, as over gRPC.
  const result = await client.execute('echo.demo', new TextEncoder().encode('hello from the browser'), { timeoutMs: 10000 });
  const command = $('command');
  command.textContent = 'result ' + result.resultCode + ' "' + text(result.payload) + '" verified, signed by ' + result.signerKeyId;
  command.dataset.resultCode = result.resultCode;
  command.dataset.requestId = result.requestId;
  command.dataset.verified = 'true';
}

async function main() {
  const config = await (await fetch('/demo/config.json')).json();
  const privateKey = await importDevicePrivateKey(fromBase64(config.devicePrivateKeyPkcs8));
  const client = await WebGatewayClient.connect({
    url: (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/ws',
    deviceSessionId: config.deviceSessionId,
    privateKey,
    gatewayPublicKeys: [config.gatewayPublicKey],
  });
  state('connected');
  $('run').disabled = false;
  $('run').onclick = () => runCommand(client).catch(showError);
  const stream = $('stream');
  // Open only once the gateway accepted it: its first event is the signed bootstrap.
  stream.textContent = 'opening';
  let first = true;
  try {
    for await (const event of client.subscribe()) {
      const item = document.createElement('li');
      item.textContent = event.eventType + ' ' + (event.eventId || '(bootstrap)') + ' user ' + event.userId + ' ' + describePayload(event) + ' verified';
      item.dataset.eventType = event.eventType;
      item.dataset.eventId = event.eventId;
      item.dataset.verified = 'true';
      $('events').append(item);
      if (first) {
        first = false;
        stream.textContent = 'open';
        stream.dataset.open = 'true';
        await runCommand(client);
      }
    }
    stream.textContent = 'ended';
    stream.dataset.code = 'OK';
  } catch (error) {
    stream.textContent = 'closed: ' + (error.codeName ?? error.name) + ' ' + (error.details ?? error.message);
    stream.dataset.code = error.codeName ?? error.name;
    stream.dataset.details = error.details ?? error.message;
  }
}

function showError(error) {
  state('error');
  const p = document.createElement('p');
  p.className = 'error';
  p.id = 'error';
  p.textContent = String(error && error.stack || error);
  document.body.append(p);
}

main().catch(showError);
</script>
</body>
</html>
`;
