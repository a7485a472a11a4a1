// Where the bytes of an idle device connection go (issue 25): starts a server (the built
// gateway or the floor, bench/intrinsic-device.mjs) with --heapsnapshot-signal, connects N idle
// device streams (WebSocket, one connection and one stream each, bench/device-scale-worker.mjs),
// takes a heap snapshot, connects `--more` further devices, takes another, and prints the
// difference per object kind (constructor name or V8 node type, self size) divided by `--more`:
// the heap bytes each further idle connection costs, by kind. RSS (which also holds what is
// outside the V8 heap: socket buffers, OpenSSL, malloc) is printed next to it.
//
//   node bench/connection-heap.mjs [--server gateway|floor] [--devices 2000] [--more 2000] [--top 40]
//        [--keep <dir>]   (keeps the two snapshots there, e.g. for Chrome DevTools' comparison view)
import { fork } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, GatewayChild, connectRedis, gatewayEnv, makeDevices, parseOptions, rssKiB, sleep, startHelper, startRedisServer, writeSessions, writeSignerKey } from './lib.mjs';

const args = parseOptions('connection-heap.mjs', { server: 'string', devices: 'number', more: 'number', top: 'number', keep: 'string' });
const kind = args.server ?? 'gateway';
const first = Number(args.devices ?? 2000);
const more = Number(args.more ?? 2000);
const top = Number(args.top ?? 40);

/** Self size and count per object kind of a .heapsnapshot. */
function summarize(path) {
  const snap = JSON.parse(readFileSync(path, 'utf8'));
  const meta = snap.snapshot.meta;
  const fields = meta.node_fields;
  const types = meta.node_types[0];
  const nf = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const { nodes, strings } = snap;
  const out = new Map();
  for (let i = 0; i < nodes.length; i += nf) {
    const type = types[nodes[i + iType]];
    let key;
    if (type === 'object' || type === 'native') key = `${type === 'native' ? 'native ' : ''}${strings[nodes[i + iName]]}`;
    else if (type === 'closure') key = `closure ${strings[nodes[i + iName]] || '(anonymous)'}`;
    else key = `(${type})`;
    if (key.length > 80) key = `${key.slice(0, 77)}...`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += nodes[i + iSize];
    e.count += 1;
    out.set(key, e);
  }
  return out;
}

const dir = args.keep ?? mkdtempSync(join(tmpdir(), 'eg-connection-heap-'));
const redis = await startRedisServer();
const raw = await connectRedis(redis);
const signer = writeSignerKey();
const devices = makeDevices(first + more, { label: 'heap' }).map((d) => ({ ...d, pkcs8: d.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64') }));
await writeSessions(raw, devices);

let server;
if (kind === 'floor') {
  process.env.BENCH_HELPER_NODE_ARGS = `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`;
  const helper = await startHelper('intrinsic-device.mjs', ['ws', String(redis.port), redis.password, signer.path]);
  server = { pid: helper.pid, port: helper.port, stop: () => helper.stop() };
} else {
  process.env.BENCH_GATEWAY_NODE_ARGS = `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`;
  const gateway = new GatewayChild(gatewayEnv(redis, signer, { GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0', GATEWAY_MAX_CONNECTIONS: '19000' }));
  const addresses = await gateway.started();
  server = { pid: gateway.pid, port: Number(addresses.websocket.slice(addresses.websocket.lastIndexOf(':') + 1)), stop: () => gateway.stop() };
}

async function generator(list) {
  const child = fork(join(BENCH_DIR, 'device-scale-worker.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue = [];
  child.on('message', (msg) => (msg.type === 'error' ? console.error(msg.error) : queue.shift()?.(msg)));
  const ask = (msg) => new Promise((resolve) => { queue.push(resolve); child.send(msg); });
  await ask({ type: 'init', transport: 'ws', tls: false, host: '127.0.0.1', port: server.port, sampleEvery: 1000, signerPublicKey: signer.publicKeyRaw.toString('base64'), devices: list.map((d) => ({ id: d.deviceSessionId, user: d.userId, key: d.pkcs8 })) });
  return { ask, child };
}

async function snapshot(label) {
  await sleep(3000);
  const before = new Set(readdirSync(dir));
  process.kill(server.pid, 'SIGUSR2');
  let file;
  for (let i = 0; i < 600 && file === undefined; i += 1) {
    await sleep(500);
    file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
  }
  // Written once its size stops growing.
  let size = -1;
  for (;;) {
    await sleep(1000);
    const s = readFileSync(join(dir, file)).length;
    if (s === size && s > 0 && readFileSync(join(dir, file), 'latin1').trimEnd().endsWith('}')) break;
    size = s;
  }
  const rss = rssKiB(server.pid);
  console.log(`${label}: snapshot ${file} (${(size / 1e6).toFixed(0)} MB), RSS ${rss} KiB`);
  return { summary: summarize(join(dir, file)), rss };
}

try {
  await sleep(2000);
  const a = await generator(devices.slice(0, first));
  const ra = await a.ask({ type: 'connect', concurrency: 250, resume: false });
  if (ra.failed) throw new Error(`connect: ${ra.firstError}`);
  const s1 = await snapshot(`${first} devices`);
  const b = await generator(devices.slice(first));
  const rb = await b.ask({ type: 'connect', concurrency: 250, resume: false });
  if (rb.failed) throw new Error(`connect: ${rb.firstError}`);
  const s2 = await snapshot(`${first + more} devices`);
  const rows = [];
  for (const [key, e] of s2.summary) {
    const o = s1.summary.get(key) ?? { size: 0, count: 0 };
    rows.push({ key, bytes: (e.size - o.size) / more, count: (e.count - o.count) / more });
  }
  rows.sort((x, y) => Math.abs(y.bytes) - Math.abs(x.bytes));
  const total = rows.reduce((s, r) => s + r.bytes, 0);
  console.log(`\n${kind}: per further idle connection: heap (self sizes) ${total.toFixed(0)} B, RSS ${(((s2.rss - s1.rss) * 1024) / more).toFixed(0)} B`);
  console.log('bytes/conn  objects/conn  kind');
  for (const r of rows.slice(0, top)) console.log(`${r.bytes.toFixed(0).padStart(10)}  ${r.count.toFixed(2).padStart(12)}  ${r.key}`);
  a.child.kill('SIGKILL');
  b.child.kill('SIGKILL');
} finally {
  await server.stop();
  await raw.quit().catch(() => undefined);
  await redis.stop();
  if (args.keep === undefined) rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
