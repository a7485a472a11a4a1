// Device scale (issue 25): one TCP connection per device, one push stream each, one user per
// device, on WebSocket and gRPC, plaintext and TLS, next to the intrinsic-work floor of the
// same connections in the same run, from the same load generator.
//
// Per transport and device count, each server (the floor, bench/intrinsic-device.mjs, then
// the built gateway binary) is started fresh and measured the same way:
//  - RSS after --settle-seconds with no connection (the "before");
//  - first connect: every device connects (--connect-concurrency handshakes in flight at
//    once, over all generator processes; 0 = all at once) with a pre-signed subscribe, timed
//    until every stream got its bootstrap event;
//  - connect storm: every device drops its connection and, once the server has let go of the
//    descriptors, all reconnect at once the same way, resuming after their last event id and,
//    on TLS, with the session ticket of their first connection (TLS resumption as a device
//    does it; the count of resumed handshakes is reported); timed to the last bootstrap;
//  - RSS per idle connection 2 s after the storm and after --settle-seconds, minus the before;
//  - load: one event per device first (so each has an id to resume after), then client
//    events of ~--payload bytes XADDed at --rate events/s for --seconds, each to
//    one user (= one device), while --reconnect-rate devices/s drop their connection and
//    reconnect with `resume_after_event_id`; delivered/s, p50/p99 delivery latency (entry id
//    time to receipt; replayed events of a reconnected device are counted apart), server CPU
//    per delivery, reconnect-to-bootstrap p50/p99, `gateway.resume_incomplete` count, events
//    lost (published and never received by their device, after a drain of up to 10 s);
//  - the generator's own CPU (per process) and the host's, so a saturated generator or host
//    is visible next to each figure.
// The generator (bench/device-scale-worker.mjs, --workers processes) uses raw frames
// (WebSocket written by hand over net/tls, gRPC over node:http2), pre-signed requests, reads
// only each event's id and verifies one event's signature in --sample-every.
// The descriptor limit (`ulimit -n`) is read first: the servers get
// GATEWAY_MAX_CONNECTIONS = limit - 64 (the most the gateway allows), and a device count that
// does not fit under it is skipped with the reason. Ed25519 sign/verify speed of the day is
// measured at the start and the end.
// TLS: gRPC through GATEWAY_AUTHENTICATED_GRPC_TLS_*, WebSocket through GATEWAY_WEBSOCKET_TLS_*.
//
//   node bench/device-scale.mjs [--quick] [--devices 5000,10000,18000]
//        [--transports ws,grpc,grpc-tls,ws-tls] [--servers floor,gateway] [--rate 12500]
//        [--reconnect-rate 84] [--seconds 30] [--payload 100] [--workers 4]
//        [--settle-seconds 40] [--connect-concurrency 1000] [--storm-timeout-ms 120000]
//        [--sample-every 1000] [--gateway-env K=V,...]
//
// BENCH_DS_TRACK=1 keeps every event id each device received and lists them in `lostSamples`
// (diagnosis of a loss; costs memory at large counts).
// Writes bench/results/device-scale.json. A figure is only worth reporting from a quiet
// machine: generator, servers and redis-server share its cores (see `noise` and `hostCpu`).
import { fork, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519Floor } from './commands.mjs';
import {
  BENCH_DIR,
  GatewayChild,
  GATEWAY_ENV_OPTION,
  MsHistogram,
  connectRedis,
  cpuSeconds,
  fmt,
  gatewayEnv,
  machineInfo,
  machineSnapshot,
  makeDevices,
  num,
  parseOptions,
  rssKiB,
  sleep,
  startHelper,
  startRedisServer,
  step,
  writeResult,
  writeSessions,
  writeSignerKey,
} from './lib.mjs';

const TRANSPORTS = ['ws', 'grpc', 'grpc-tls', 'ws-tls'];
const SERVERS = ['floor', 'gateway'];
const CLIENT_EVENTS = 'gateway:client-events';

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = {
  quick: 'boolean',
  devices: 'numbers',
  transports: { list: TRANSPORTS },
  servers: { list: SERVERS },
  rate: 'number',
  'reconnect-rate': 'number',
  seconds: 'number',
  payload: 'number',
  workers: 'number',
  'settle-seconds': 'number',
  'connect-concurrency': 'number',
  'storm-timeout-ms': 'number',
  'sample-every': 'number',
  ...GATEWAY_ENV_OPTION,
};

/** `Max open files` of this process (the children inherit it): `{ soft, hard }`. */
export function openFileLimit() {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const n = (v) => (v === undefined || v === 'unlimited' ? Infinity : Number(v));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

const openFds = (pid) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
};

/** A self-signed certificate for localhost / 127.0.0.1 (openssl), in a temp dir. */
function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'eg-device-scale-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key, ca: readFileSync(cert) };
}

/** The generator processes: `ask(msg)` sends to every worker and resolves their answers. */
async function startWorkers(count, init) {
  const workers = [];
  for (let w = 0; w < count; w += 1) {
    const child = fork(join(BENCH_DIR, 'device-scale-worker.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const queue = [];
    const worker = { child, queue, exited: undefined };
    child.once('exit', (code) => {
      worker.exited = new Error(`generator ${w} exited (${code})`);
      for (const waiter of queue.splice(0)) waiter(worker.exited);
    });
    child.on('message', (msg) => {
      if (msg.type === 'error') {
        console.error(`generator ${w}: ${msg.error}`);
        return;
      }
      queue.shift()?.(msg);
    });
    workers.push(worker);
  }
  const ask = (msgFor) =>
    Promise.all(
      workers.map(
        (w, i) =>
          new Promise((resolve, reject) => {
            if (w.exited) return reject(w.exited);
            w.queue.push((answer) => (answer instanceof Error ? reject(answer) : resolve(answer)));
            w.child.send(typeof msgFor === 'function' ? msgFor(i) : msgFor);
            return undefined;
          }),
      ),
    );
  await ask((i) => init(i));
  return {
    ask,
    pids: workers.map((w) => w.child.pid),
    async stop() {
      for (const w of workers) {
        if (w.child.exitCode === null) w.child.kill('SIGKILL');
      }
    },
  };
}

const merge = (sparses) => {
  const h = new MsHistogram();
  for (const sparse of sparses) {
    for (const [ms, count] of sparse) {
      h.counts[ms] += count;
      h.n += count;
    }
  }
  return h.summary();
};

/** Publishes `eventsPerSec` for `seconds` (or `count` events) round-robin over `users`; per-user counts in `perUser`. */
async function publish(redis, users, perUser, { eventsPerSec, seconds, count, payloadBase64 }) {
  const started = performance.now();
  let sent = 0;
  let u = 0;
  const pending = [];
  while (count === undefined ? performance.now() - started < seconds * 1000 : sent < count) {
    const due = Math.min(count ?? Infinity, Math.floor(((performance.now() - started) / 1000) * eventsPerSec));
    const batch = [];
    while (sent < due) {
      batch.push(redis.xAdd(CLIENT_EVENTS, '*', { user_id: users[u], event_type: 'bench.device', payload_base64: payloadBase64 }, { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 200_000 } }));
      perUser[u] += 1;
      u = (u + 1) % users.length;
      sent += 1;
    }
    if (batch.length > 0) pending.push(Promise.all(batch));
    await sleep(10);
  }
  await Promise.all(pending);
  return { sent, seconds: (performance.now() - started) / 1000 };
}

async function startServer(kind, transport, ctx, params) {
  const tls = transport.endsWith('-tls');
  const proto = transport.startsWith('ws') ? 'ws' : 'grpc';
  if (kind === 'floor') {
    const helper = await startHelper('intrinsic-device.mjs', [proto, String(ctx.redis.port), ctx.redis.password, ctx.signer.path, ...(tls ? [ctx.cert.cert, ctx.cert.key] : [])]);
    return { pid: helper.pid, port: helper.port, stop: () => helper.stop() };
  }
  const env = gatewayEnv(ctx.redis, ctx.signer, {
    GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0',
    GATEWAY_MAX_CONNECTIONS: String(params.maxConnections),
    ...(tls && proto === 'grpc' ? { GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH: ctx.cert.cert, GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH: ctx.cert.key } : {}),
    ...(tls && proto !== 'grpc' ? { GATEWAY_WEBSOCKET_TLS_CERT_PATH: ctx.cert.cert, GATEWAY_WEBSOCKET_TLS_KEY_PATH: ctx.cert.key } : {}),
  });
  const gateway = new GatewayChild(env);
  try {
    const addresses = await gateway.started();
    const address = proto === 'ws' ? addresses.websocket : addresses.grpc;
    return { pid: gateway.pid, port: Number(address.slice(address.lastIndexOf(':') + 1)), stop: () => gateway.stop() };
  } catch (error) {
    await gateway.stop();
    throw error;
  }
}

/** Total CPU seconds of the host (all cores) from /proc/stat. */
function hostCpuSeconds() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = line[3] + (line[4] ?? 0);
  const total = line.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / 100, total: total / 100 };
}

async function runOne(kind, transport, count, ctx, params) {
  const label = `${kind} ${transport} ${fmt(count)}`;
  const level = ctx.devices.slice(0, count);
  const users = level.map((d) => d.userId);
  const out = { server: kind, transport, devices: count };
  const server = await startServer(kind, transport, ctx, params);
  let workers;
  try {
    await sleep(params.settleSeconds * 1000);
    const rssBefore = rssKiB(server.pid);
    const fdsBefore = openFds(server.pid);
    const per = Math.ceil(count / params.workers);
    workers = await startWorkers(Math.min(params.workers, count), (w) => ({
      type: 'init',
      transport: transport.startsWith('ws') ? 'ws' : 'grpc',
      tls: transport.endsWith('-tls'),
      ca: transport.endsWith('-tls') ? ctx.cert.ca.toString() : undefined,
      host: '127.0.0.1',
      port: server.port,
      sampleEvery: params.sampleEvery,
      signerPublicKey: ctx.signer.publicKeyRaw.toString('base64'),
      devices: level.slice(w * per, (w + 1) * per).map((d) => ({ id: d.deviceSessionId, user: d.userId, key: d.pkcs8 })),
    }));
    const lanes = params.connectConcurrency > 0 ? Math.max(1, Math.ceil(params.connectConcurrency / params.workers)) : 0;
    const connectPhase = async (resume) => {
      const cpu0 = cpuSeconds(server.pid);
      const timeout = sleep(params.stormTimeoutMs).then(() => 'timeout');
      const answers = await Promise.race([workers.ask({ type: 'connect', concurrency: lanes, resume }), timeout]);
      if (answers === 'timeout') return { error: `not every device bootstrapped within ${params.stormTimeoutMs} ms` };
      const startedAt = Math.min(...answers.map((a) => a.startedAt));
      const bootstrapped = answers.reduce((s, a) => s + a.bootstrapped, 0);
      const failed = answers.reduce((s, a) => s + a.failed, 0);
      return {
        allBootstrappedMs: failed === 0 ? Math.max(...answers.map((a) => a.lastBootAt)) - startedAt : null,
        bootstrapped,
        failed,
        firstError: answers.find((a) => a.firstError)?.firstError,
        tlsResumed: answers.reduce((s, a) => s + a.tlsReused, 0),
        perConnectionBootMsP99ByGenerator: answers.map((a) => a.bootMs.p99),
        serverCpuSeconds: Math.round((cpuSeconds(server.pid) - cpu0) * 100) / 100,
        serverFds: openFds(server.pid),
      };
    };
    out.firstConnect = await connectPhase(false);
    console.log(`    ${label}: first connect ${out.firstConnect.allBootstrappedMs ?? `FAILED${out.firstConnect.error ? ` (${out.firstConnect.error})` : ''}`} ms (${out.firstConnect.bootstrapped} bootstrapped, ${out.firstConnect.failed} failed${out.firstConnect.firstError ? `: ${out.firstConnect.firstError}` : ''})`);
    if (out.firstConnect.failed > 0 || out.firstConnect.error) return out;

    // The storm: everyone drops, the server lets go of the descriptors, everyone comes back.
    await workers.ask({ type: 'disconnect' });
    const deadline = performance.now() + 30_000;
    while (openFds(server.pid) > fdsBefore + 16 && performance.now() < deadline) await sleep(100);
    out.storm = await connectPhase(true);
    console.log(
      `    ${label}: storm ${out.storm.allBootstrappedMs ?? 'FAILED'} ms (${out.storm.bootstrapped} bootstrapped, ${out.storm.failed} failed${out.storm.firstError ? `: ${out.storm.firstError}` : ''}${transport.endsWith('-tls') ? `, ${out.storm.tlsResumed} TLS sessions resumed` : ''})`,
    );
    if (out.storm.failed > 0 || out.storm.error) return out;

    const perConnection = (rss) => Math.round(((rss - rssBefore) / count) * 100) / 100;
    await sleep(2000);
    const rssAfterStorm = rssKiB(server.pid);
    await sleep(Math.max(0, params.settleSeconds - 2) * 1000);
    const rssSettled = rssKiB(server.pid);
    out.memory = {
      rssBeforeKiB: rssBefore,
      rssTwoSecondsAfterStormKiB: rssAfterStorm,
      rssSettledKiB: rssSettled,
      settleSeconds: params.settleSeconds,
      perConnectionAfterStormKiB: perConnection(rssAfterStorm),
      perConnectionSettledKiB: perConnection(rssSettled),
    };
    console.log(`    ${label}: RSS per idle connection ${out.memory.perConnectionSettledKiB} KiB settled, ${out.memory.perConnectionAfterStormKiB} KiB 2 s after the storm`);

    // Load with churn. First one event per device, so that every device has an event id to
    // resume after (a device that got none yet resumes after nothing and misses the gap).
    await workers.ask({ type: 'reset' });
    const warm = await publish(ctx.raw, users, new Uint32Array(users.length), { eventsPerSec: params.rate, count: users.length, payloadBase64: params.payloadBase64 });
    const warmDeadline = performance.now() + 30_000;
    let warmed = 0;
    while (performance.now() < warmDeadline) {
      warmed = (await workers.ask({ type: 'stats', full: false })).reduce((s, a) => s + a.distinctTotal, 0);
      if (warmed >= warm.sent) break;
      await sleep(200);
    }
    out.warmUp = { events: warm.sent, received: warmed };
    await workers.ask({ type: 'reset' });
    const perUser = new Uint32Array(users.length);
    const cpu0 = cpuSeconds(server.pid);
    const redisCpu0 = cpuSeconds(ctx.redis.pid);
    const host0 = hostCpuSeconds();
    const self0 = process.cpuUsage();
    const t0 = performance.now();
    await workers.ask({ type: 'churn', perSec: params.reconnectRate / workers.pids.length });
    const pub = await publish(ctx.raw, users, perUser, { eventsPerSec: params.rate, seconds: params.seconds, payloadBase64: params.payloadBase64 });
    await workers.ask({ type: 'stop-churn' });
    const publishEnd = performance.now();
    // Drain: until every event arrived, or nothing arrived for 3 s with no reconnect in flight,
    // or 30 s.
    const drainDeadline = performance.now() + 30_000;
    let received = -1;
    let progressAt = performance.now();
    for (;;) {
      const light = await workers.ask({ type: 'stats', full: false });
      const now = light.reduce((s, a) => s + a.distinctTotal, 0);
      const inFlight = light.reduce((s, a) => s + a.reconnectsInFlight, 0);
      if (now !== received) progressAt = performance.now();
      received = now;
      if (received >= pub.sent || performance.now() > drainDeadline || (inFlight === 0 && performance.now() - progressAt > 3000)) break;
      await sleep(200);
    }
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(server.pid) - cpu0;
    const host1 = hostCpuSeconds();
    const self = process.cpuUsage(self0);
    const stats = await workers.ask({ type: 'stats', full: true });
    let lost = 0;
    let lostOnReconnected = 0;
    let delivered = 0;
    const lostSamples = [];
    let w = 0;
    for (const s of stats) {
      for (let k = 0; k < s.distinct.length; k += 1) {
        const u = w * per + k;
        delivered += s.distinct[k];
        const missing = Math.max(0, perUser[u] - s.distinct[k]);
        lost += missing;
        if (missing > 0 && s.reconnectsOf[k] > 0) lostOnReconnected += missing;
        if (missing > 0 && lostSamples.length < 10) lostSamples.push({ device: level[u].deviceSessionId, published: perUser[u], received: s.distinct[k], reconnects: s.reconnectsOf[k], streamOpenAtEnd: s.openOf[k] === 1, ...(s.idsOf ? { ids: s.idsOf[k] } : {}) });
      }
      w += 1;
    }
    // Lost or late? Ten more seconds, then the devices that missed events are counted again.
    let lostAfterTenSecondsMore;
    if (lost > 0) {
      await sleep(10_000);
      const again = await workers.ask({ type: 'stats', full: true });
      lostAfterTenSecondsMore = 0;
      again.forEach((s, wi) => {
        for (let k = 0; k < s.distinct.length; k += 1) lostAfterTenSecondsMore += Math.max(0, perUser[wi * per + k] - s.distinct[k]);
      });
    }
    const sum = (f) => stats.reduce((s, a) => s + f(a), 0);
    const endReasons = {};
    for (const s of stats) for (const [r, n] of Object.entries(s.endReasons)) endReasons[r] = (endReasons[r] ?? 0) + n;
    const hostBusy = host1.busy - host0.busy;
    const hostTotal = host1.total - host0.total;
    out.load = {
      offeredEventsPerSec: params.rate,
      eventsPublished: pub.sent,
      publishedPerSec: Math.round(pub.sent / pub.seconds),
      delivered,
      deliveredPerSec: Math.round(delivered / ((publishEnd - t0) / 1000)),
      drainedWithinS: Math.round(elapsed - (publishEnd - t0) / 1000) || 0,
      lost,
      lostOnReconnectedDevices: lostOnReconnected,
      ...(lostAfterTenSecondsMore === undefined ? {} : { lostAfterTenSecondsMore }),
      lostSamples,
      latencyMs: merge(stats.map((s) => s.live)),
      replayedEvents: sum((s) => s.replayed),
      duplicateEvents: sum((s) => s.duplicates),
      outOfOrderEvents: sum((s) => s.outOfOrder),
      reconnects: sum((s) => s.reconnects),
      reconnectsPerSec: Math.round((sum((s) => s.reconnects) / pub.seconds) * 10) / 10,
      reconnectFailures: sum((s) => s.reconnectFailures),
      reconnectToBootstrapMs: merge(stats.map((s) => s.reconnect)),
      resumeIncomplete: sum((s) => s.resumeIncomplete),
      streamsEndedByServer: sum((s) => s.ended),
      endReasons,
      signaturesVerified: sum((s) => s.verified),
      signaturesFailed: sum((s) => s.verifyFailed),
      serverCpuPercent: Math.round((cpu / elapsed) * 100),
      cpuPerDeliveryUs: delivered === 0 ? null : Math.round((cpu / delivered) * 1e7) / 10,
      redisCpuPercent: Math.round(((cpuSeconds(ctx.redis.pid) - redisCpu0) / elapsed) * 100),
      generatorCpuPercent: stats.map((s) => Math.round((s.cpuSeconds / s.wallSeconds) * 100)),
      publisherCpuPercent: Math.round(((self.user + self.system) / 1e6 / elapsed) * 100),
      hostCpu: { busyPercentOfAllCores: Math.round((hostBusy / hostTotal) * 100), cores: cpus().length },
      openStreamsAtEnd: sum((s) => s.open),
    };
    out.load.saturated = {
      generator: out.load.generatorCpuPercent.some((p) => p >= 90),
      host: out.load.hostCpu.busyPercentOfAllCores >= 90,
    };
    const l = out.load;
    console.log(
      `    ${label}: ${fmt(l.deliveredPerSec)}/s delivered of ${fmt(l.publishedPerSec)}/s, p50 ${l.latencyMs.p50} p99 ${l.latencyMs.p99} ms, cpu ${l.serverCpuPercent}% (${l.cpuPerDeliveryUs} µs/delivery), ${l.reconnects} reconnects (p99 to bootstrap ${l.reconnectToBootstrapMs.p99} ms), ${l.resumeIncomplete} resume_incomplete, ${l.lost} lost; generator cpu ${l.generatorCpuPercent.join('/')}%, host ${l.hostCpu.busyPercentOfAllCores}%`,
    );
    return out;
  } finally {
    await workers?.ask({ type: 'exit' }).catch(() => undefined);
    await workers?.stop();
    await server.stop();
  }
}

// No ratio to a floor figure of zero or below (an RSS difference at a small count can be
// negative: the "before" still held start-up heap that V8 gave back later).
const ratio = (a, b) => (a == null || b == null || b <= 0 ? null : Math.round((a / b) * 1000) / 1000);

/** Gateway ÷ floor per transport and device count, and the issue's targets. */
function compare(runs) {
  const rows = [];
  for (const g of runs.filter((r) => r.server === 'gateway')) {
    const f = runs.find((r) => r.server === 'floor' && r.transport === g.transport && r.devices === g.devices);
    rows.push({
      transport: g.transport,
      devices: g.devices,
      cpuPerDelivery: ratio(g.load?.cpuPerDeliveryUs, f?.load?.cpuPerDeliveryUs),
      memoryPerConnectionSettled: ratio(g.memory?.perConnectionSettledKiB, f?.memory?.perConnectionSettledKiB),
      memoryPerConnectionAfterStorm: ratio(g.memory?.perConnectionAfterStormKiB, f?.memory?.perConnectionAfterStormKiB),
      storm: ratio(g.storm?.allBootstrappedMs, f?.storm?.allBootstrappedMs),
      targets: {
        p99AtMost100Ms: g.load ? g.load.latencyMs.p99 <= 100 : false,
        noEventLost: g.load ? g.load.lost === 0 : false,
        noResumeIncomplete: g.load ? g.load.resumeIncomplete === 0 : false,
        reconnectP99AtMost1s: g.load ? g.load.reconnectToBootstrapMs.p99 <= 1000 : false,
        rssPerIdleConnectionAtMost20KiB: g.memory ? g.memory.perConnectionSettledKiB <= 20 : false,
        stormWithin20s: g.storm ? g.storm.failed === 0 && g.storm.allBootstrappedMs !== null && g.storm.allBootstrappedMs <= 20_000 : false,
        cpuPerDeliveryAtMost1_10xFloor: (() => {
          const r = ratio(g.load?.cpuPerDeliveryUs, f?.load?.cpuPerDeliveryUs);
          return r !== null && r <= 1.1;
        })(),
        memoryPerConnectionAtMost1_10xFloor: (() => {
          const r = ratio(g.memory?.perConnectionSettledKiB, f?.memory?.perConnectionSettledKiB);
          return r !== null && r <= 1.1;
        })(),
      },
    });
  }
  return rows;
}

/**
 * The issue's targets at the largest device count the gateway was measured at, worst over the
 * transports (each row names the transport that gave it).
 */
function targetsOf(runs, comparison, params) {
  const measured = runs.filter((r) => r.server === 'gateway' && r.load);
  if (measured.length === 0) return {};
  const devices = Math.max(...measured.map((r) => r.devices));
  const top = measured.filter((r) => r.devices === devices);
  const rows = comparison.filter((c) => c.devices === devices);
  const worst = (items, f, dir = 'max') => {
    const withValue = items.map((x) => ({ x, v: f(x) })).filter(({ v }) => v !== null && v !== undefined && Number.isFinite(v));
    if (withValue.length === 0) return { value: null, transport: null };
    const pick = withValue.reduce((a, b) => ((dir === 'max' ? b.v > a.v : b.v < a.v) ? b : a));
    return { value: pick.v, transport: pick.x.transport };
  };
  const at = `${devices} devices`;
  const p99 = worst(top, (r) => r.load.latencyMs.p99);
  const delivered = worst(top, (r) => r.load.deliveredPerSec, 'min');
  const lost = worst(top, (r) => r.load.lost);
  const resume = worst(top, (r) => r.load.resumeIncomplete);
  const reconnect = worst(top, (r) => r.load.reconnectToBootstrapMs.p99);
  const rss = worst(top, (r) => r.memory.perConnectionSettledKiB);
  const storm = worst(top, (r) => (r.storm?.failed === 0 ? r.storm.allBootstrappedMs : Infinity));
  const cpu = worst(rows, (c) => c.cpuPerDelivery);
  const mem = worst(rows, (c) => c.memoryPerConnectionSettled);
  return {
    deliveries: { target: `${params.rate} deliveries/s at p99 <= 100 ms (${at}, ${params.reconnectRate} reconnects/s)`, value: { deliveredPerSec: delivered.value, p99Ms: p99.value, transport: p99.transport }, met: p99.value !== null && p99.value <= 100 && delivered.value >= params.rate * 0.99 },
    lost: { target: `0 events lost (${at})`, value: lost.value, transport: lost.transport, met: lost.value === 0 },
    resumeIncomplete: { target: `0 gateway.resume_incomplete (${at})`, value: resume.value, transport: resume.transport, met: resume.value === 0 },
    reconnectToBootstrapP99: { target: `<= 1000 ms (${at})`, value: reconnect.value, transport: reconnect.transport, met: reconnect.value !== null && reconnect.value <= 1000 },
    rssPerIdleConnection: { target: `<= 20 KiB settled (${at})`, value: rss.value, transport: rss.transport, met: rss.value !== null && rss.value <= 20 },
    connectStorm: { target: `all bootstrapped within 20000 ms, none refused (${at})`, value: storm.value === Infinity ? 'failed' : storm.value, transport: storm.transport, met: storm.value !== null && storm.value <= 20_000 },
    cpuPerDeliveryVsFloor: { target: `<= 1.10 x floor (${at})`, value: cpu.value, transport: cpu.transport, met: cpu.value !== null && cpu.value <= 1.1 },
    memoryPerConnectionVsFloor: { target: `<= 1.10 x floor (${at})`, value: mem.value, transport: mem.transport, met: mem.value !== null && mem.value <= 1.1 },
  };
}

export async function runDeviceScale(argv) {
  const args = parseOptions('device-scale.mjs', OPTIONS, argv);
  const quick = args.quick;
  const list = (name, fallback) => (typeof args[name] === 'string' ? args[name].split(',') : fallback);
  const limit = openFileLimit();
  const params = {
    quick,
    devices: list('devices', quick ? ['500'] : ['5000', '10000', '18000']).map(Number),
    transports: list('transports', quick ? ['ws', 'grpc-tls'] : ['ws', 'grpc', 'grpc-tls', 'ws-tls']),
    servers: list('servers', SERVERS),
    rate: num(args, 'rate', quick ? 1000 : 12_500),
    reconnectRate: num(args, 'reconnect-rate', quick ? 10 : 84),
    seconds: num(args, 'seconds', quick ? 10 : 30),
    payloadBytes: num(args, 'payload', 100),
    workers: num(args, 'workers', 4),
    settleSeconds: num(args, 'settle-seconds', quick ? 10 : 40),
    connectConcurrency: num(args, 'connect-concurrency', 1000),
    stormTimeoutMs: num(args, 'storm-timeout-ms', 120_000),
    sampleEvery: num(args, 'sample-every', 1000),
  };
  params.payloadBase64 = Buffer.alloc(params.payloadBytes, 7).toString('base64');
  // The gateway allows at most the soft limit - 64 (edge bounds); 100 more stay for the churn's
  // connections the server has not let go of yet and the storm's overlap.
  params.maxConnections = Number.isFinite(limit.soft) ? limit.soft - 64 : 1_000_000;
  const maxDevices = Number.isFinite(limit.soft) ? limit.soft - 64 - 100 : Infinity;
  const descriptors = {
    openFilesSoft: Number.isFinite(limit.soft) ? limit.soft : 'unlimited',
    openFilesHard: Number.isFinite(limit.hard) ? limit.hard : 'unlimited',
    gatewayMaxConnections: params.maxConnections,
    maxDevicesPerServerProcess: Number.isFinite(maxDevices) ? maxDevices : 'unlimited',
    note: 'one descriptor per device connection in the server process; the generator processes split theirs',
  };
  console.log(`device scale benchmark ${JSON.stringify({ ...params, payloadBase64: undefined })}`);
  console.log(`  open files ${descriptors.openFilesSoft} (hard ${descriptors.openFilesHard}): at most ${fmt(maxDevices)} devices per server process`);
  const before = machineSnapshot();
  const ed25519Before = await step('ed25519 single-thread speed (node:crypto)', () => ed25519Floor(1));
  const redis = await startRedisServer();
  const raw = await connectRedis(redis);
  const signer = writeSignerKey();
  const cert = params.transports.some((t) => t.endsWith('-tls')) ? makeCertificate() : undefined;
  const maxCount = Math.max(...params.devices);
  const devices = await step(`generating ${fmt(maxCount)} device keys`, () =>
    makeDevices(maxCount, { label: 'dev' }).map((d) => ({ ...d, pkcs8: d.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64') })),
  );
  await step('writing session records', () => writeSessions(raw, devices));
  const ctx = { redis, raw, signer, cert, devices };
  const runs = [];
  const skipped = [];
  try {
    for (const transport of params.transports) {
      for (const count of params.devices) {
        if (count > maxDevices) {
          skipped.push({ transport, devices: count, reason: `over the descriptor limit: at most ${maxDevices} devices per process with ulimit -n ${limit.soft}` });
          console.log(`  skipped ${transport} ${fmt(count)}: ${skipped.at(-1).reason}`);
          continue;
        }
        for (const kind of params.servers) {
          try {
            runs.push(await step(`${kind} ${transport} ${fmt(count)} devices`, () => runOne(kind, transport, count, ctx, params)));
          } catch (error) {
            runs.push({ server: kind, transport, devices: count, error: String(error?.message ?? error) });
            console.log(`    FAILED: ${error?.message ?? error}`);
          }
        }
      }
    }
  } finally {
    await raw.quit().catch(() => undefined);
    await redis.stop();
  }
  const ed25519After = ed25519Floor(1);
  const comparison = compare(runs);
  for (const c of comparison) console.log(`  ${c.transport} ${fmt(c.devices)}: gateway ÷ floor cpu/delivery ${c.cpuPerDelivery}, memory/connection ${c.memoryPerConnectionSettled} (after storm ${c.memoryPerConnectionAfterStorm}), storm ${c.storm}`);
  const out = {
    benchmark: 'device-scale',
    quick,
    params: { ...params, payloadBase64: undefined },
    machine: machineInfo(),
    ed25519: { before: ed25519Before, after: ed25519After },
    descriptors,
    noise: { before, after: machineSnapshot() },
    processes: `servers (floor: bench/intrinsic-device.mjs; gateway: apps/gateway/dist/main.js) as children; ${params.workers} generator processes (bench/device-scale-worker.mjs); the publisher (this process); redis-server; loopback`,
    results: { targets: targetsOf(runs, comparison, params), comparison, skipped, runs },
  };
  console.log(`  written ${writeResult('device-scale', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runDeviceScale(process.argv.slice(2));
  process.exit(0);
}
