// Push fan-out benchmark against the built gateway binary and a real redis-server.
//
// For each stream count (default 1k, 5k, 10k) a fresh gateway is started, then:
//  - subscribe storm: every stream is opened at once with a pre-signed subscribe request over
//    ~100 client connections; time until all got their bootstrap event;
//  - resident memory per idle stream: gateway VmRSS before opening them vs after they have
//    been open and idle for --settle-seconds (default 40, quick 25; V8 returns the storm's heap
//    growth ~20 s after it), the "before" also taken --settle-seconds after start-up; the
//    figure 2 s after the storm is reported too;
//  - fan-out at rising rates: client events XADDed to the client-events stream, each for one
//    user (every stream of that user gets it); delivered/s and latency from the Redis entry id
//    time (its ms part) to receipt at the client (p50/p99).
// The bench clients use a raw gRPC client: no signature verification, only the event id is
// read from the wire bytes (client-side verification would dominate this process's CPU).
//
// Baselines, same run, at every level: bench/intrinsic-push.mjs, the intrinsic-work push server
// (the targets' yardstick; --no-intrinsic skips it), and bench/bare-push.mjs, a bare grpc-js
// fan-out server (no checks, unsigned events; --no-bare skips it). Ratios are gateway ÷ baseline.
//
//   node bench/push.mjs [--quick] [--streams 1000,5000,10000] [--connections 100]
//        [--devices-per-user 4] [--rates 5000,10000,20000,40000] [--step-seconds 5]
//        [--settle-seconds 40] [--no-bare] [--no-intrinsic] [--before-main <main.js>]
import {
  GatewayChild,
  MsHistogram,
  closeAll,
  connectRedis,
  cpuSeconds,
  eventIdOf,
  fmt,
  gatewayEnv,
  idMs,
  machineInfo,
  machineSnapshot,
  makeDevices,
  num,
  openStreams,
  parseOptions,
  GATEWAY_ENV_OPTION,
  rawClients,
  rssKiB,
  signedSubscribe,
  sleep,
  startHelper,
  startRedisServer,
  step,
  writeResult,
  writeSessions,
  writeSignerKey,
} from './lib.mjs';

const CLIENT_EVENTS = 'gateway:client-events';

/**
 * Publishes client events at `deliveriesPerSec` (events/s = that / devicesPerUser) for
 * `seconds`, in 10 ms ticks, pipelined through node-redis. Each event targets one user.
 */
export async function publishAtRate(redis, users, { eventsPerSec, seconds, payloadBase64 }) {
  const tickMs = 10;
  const started = performance.now();
  let sent = 0;
  let u = 0;
  const pending = [];
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * eventsPerSec);
    const batch = [];
    while (sent < due) {
      batch.push(redis.xAdd(CLIENT_EVENTS, '*', { user_id: users[u], event_type: 'bench.tick', payload_base64: payloadBase64 }, { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 100_000 } }));
      u = (u + 1) % users.length;
      sent += 1;
    }
    if (batch.length > 0) pending.push(Promise.all(batch));
    await sleep(tickMs);
  }
  await Promise.all(pending);
  return { sent, seconds: (performance.now() - started) / 1000 };
}

/** The server under test: the gateway binary (this build or `main`), or the bare baseline. */
async function startServer(redis, signer, target) {
  if (target.bare || target.intrinsic) {
    const helper = target.bare
      ? await startHelper('bare-push.mjs', [String(redis.port), redis.password])
      : await startHelper('intrinsic-push.mjs', [String(redis.port), redis.password, signer.path]);
    return { pid: helper.pid, spawnedAt: helper.spawnedAt, grpc: `127.0.0.1:${helper.port}`, stop: () => helper.stop() };
  }
  const gateway = new GatewayChild(gatewayEnv(redis, signer), { main: target.main });
  try {
    const { grpc } = await gateway.started();
    return { pid: gateway.pid, spawnedAt: gateway.spawnedAt, grpc, stop: () => gateway.stop() };
  } catch (error) {
    await gateway.stop();
    throw error;
  }
}

/** Counts live events received by the bench clients, with a latency histogram while a step runs. */
export function deliveryCounter() {
  const counter = {
    received: 0,
    ended: 0,
    hist: undefined,
    onEvent: (buf) => {
      counter.received += 1;
      if (counter.hist) counter.hist.record(Date.now() - idMs(eventIdOf(buf)));
    },
    onEnd: () => {
      counter.ended += 1;
    },
  };
  return counter;
}

/**
 * Fan-out at rising rates (`params.rates`, deliveries/s; each event goes to the
 * `params.devicesPerUser` streams of one user): delivered/s, latency from the entry id's time
 * to receipt, gateway CPU; stops raising the rate once saturated. `label` prefixes the lines.
 */
export async function fanoutSteps(gateway, raw, users, params, counter, label = '') {
  const rows = [];
  for (const rate of params.rates) {
    const eventsPerSec = rate / params.devicesPerUser;
    counter.hist = new MsHistogram();
    const r0 = counter.received;
    const c0 = cpuSeconds(gateway.pid);
    const t0 = performance.now();
    const pub = await publishAtRate(raw, users, { eventsPerSec, seconds: params.stepSeconds, payloadBase64: params.payloadBase64 });
    // Let the tail arrive (bounded), then measure over publish start → last receipt.
    const expected = pub.sent * params.devicesPerUser;
    const deadline = performance.now() + 5000;
    while (counter.received - r0 < expected && performance.now() < deadline) await sleep(20);
    const elapsed = (performance.now() - t0) / 1000;
    const delivered = counter.received - r0;
    const cpu = cpuSeconds(gateway.pid) - c0;
    const lat = counter.hist.summary();
    counter.hist = undefined;
    const row = {
      offeredDeliveriesPerSec: rate,
      eventsPublished: pub.sent,
      publishedPerSec: Math.round(pub.sent / pub.seconds),
      expectedDeliveries: expected,
      delivered,
      lost: expected - delivered,
      deliveredPerSec: Math.round(delivered / elapsed),
      latencyMs: lat,
      gatewayCpuPercent: Math.round((cpu / elapsed) * 100),
      cpuPerDeliveryUs: delivered === 0 ? null : Math.round((cpu / delivered) * 1e7) / 10,
      // Seconds after the server was spawned: the window to read in a --cpu-prof profile.
      sinceSpawnS: [Math.round((t0 - gateway.spawnedAt) / 100) / 10, Math.round((performance.now() - gateway.spawnedAt) / 100) / 10],
      streamsEnded: counter.ended,
    };
    rows.push(row);
    console.log(
      `    ${label}offered ${fmt(rate)}/s: delivered ${fmt(row.deliveredPerSec)}/s (${fmt(delivered)}/${fmt(expected)}), p50 ${lat.p50} ms p99 ${lat.p99} ms, gateway cpu ${row.gatewayCpuPercent}%`,
    );
    if (row.lost > expected * 0.05 || lat.p99 > 2000 || counter.ended > 0) {
      console.log('    saturated: not raising the rate further');
      break;
    }
    await sleep(500);
  }
  return rows;
}

async function runLevel(redis, raw, signer, devices, streams, params, target = {}) {
  const level = devices.slice(0, streams);
  const perUser = params.devicesPerUser;
  const users = [...new Set(level.map((d) => d.userId))];
  const gateway = await startServer(redis, signer, target);
  const out = { streams, users: users.length, devicesPerUser: perUser };
  let clients;
  let opened;
  try {
    const { grpc } = gateway;
    clients = await rawClients(grpc, params.connections);
    // The "before" RSS is taken after the same settling time as the "after" one: right after
    // start-up the heap still holds start-up garbage that V8 gives back later.
    await sleep(params.settleSeconds * 1000);
    const rssBefore = rssKiB(gateway.pid);

    const requests = level.map((d) => signedSubscribe(d));
    const counter = deliveryCounter();
    const cpu0 = cpuSeconds(gateway.pid);
    opened = openStreams(clients, requests, { onEvent: counter.onEvent, onEnd: counter.onEnd, timeoutMs: params.stormTimeoutMs });
    let stormMs;
    let stormError;
    try {
      stormMs = await opened.ready;
    } catch (error) {
      stormError = error.message;
    }
    out.subscribeStorm = {
      streams,
      connections: params.connections,
      allBootstrappedMs: stormMs === undefined ? null : Math.round(stormMs),
      bootstrapped: opened.bootstrapped,
      gatewayCpuSeconds: Math.round((cpuSeconds(gateway.pid) - cpu0) * 100) / 100,
      ...(stormError ? { error: stormError } : {}),
    };
    console.log(`    ${fmt(streams)} streams: storm ${stormMs === undefined ? `FAILED (${stormError})` : `${Math.round(stormMs)} ms`}`);
    if (stormMs === undefined) return out;

    // Right after the storm the heap still holds the storm's garbage and growth slack; V8's
    // memory reducer gives it back once allocation has been quiet for a while (~20 s here).
    // The idle figure is the RSS after `settleSeconds` with every stream open and idle.
    const perStream = (rss) => Math.round(((rss - rssBefore) / streams) * 100) / 100;
    await sleep(2000);
    const rssJustAfter = rssKiB(gateway.pid);
    const samples = [];
    for (let s = 2; s < params.settleSeconds; s += 1) {
      await sleep(1000);
      samples.push(rssKiB(gateway.pid));
    }
    const rssAfter = samples.at(-1) ?? rssJustAfter;
    out.memory = {
      rssBeforeKiB: rssBefore,
      rssTwoSecondsAfterStormKiB: rssJustAfter,
      perStreamTwoSecondsAfterStormKiB: perStream(rssJustAfter),
      settleSeconds: params.settleSeconds,
      rssAfterKiB: rssAfter,
      perStreamKiB: perStream(rssAfter),
      perStreamEverySecondKiB: samples.map(perStream),
    };
    console.log(
      `    RSS ${fmt(rssBefore / 1024, 1)} → ${fmt(rssAfter / 1024, 1)} MiB after ${params.settleSeconds} s idle: ${out.memory.perStreamKiB} KiB per idle stream (${out.memory.perStreamTwoSecondsAfterStormKiB} KiB 2 s after the storm)`,
    );

    out.fanout = await fanoutSteps(gateway, raw, users, params, counter);
    return out;
  } finally {
    closeAll(opened?.calls, clients);
    await gateway.stop();
  }
}

function targetsOf(levels) {
  const top = levels[levels.length - 1];
  const best = levels
    .flatMap((l) => (l.fanout ?? []).map((f) => ({ ...f, streams: l.streams })))
    .filter((f) => f.latencyMs.p99 <= 100 && f.lost === 0)
    .sort((a, b) => b.deliveredPerSec - a.deliveredPerSec)[0];
  const perStream = top?.memory?.perStreamKiB ?? null;
  const storm = levels.find((l) => l.streams === 10_000)?.subscribeStorm ?? top?.subscribeStorm;
  return {
    streams10kInOneProcess: { target: '10k streams open in one gateway process', value: levels.find((l) => l.streams >= 10_000)?.subscribeStorm?.bootstrapped ?? 0, met: (levels.find((l) => l.streams >= 10_000)?.subscribeStorm?.bootstrapped ?? 0) >= 10_000 },
    deliveries: { target: '>= 20000 deliveries/s with p99 <= 100 ms, none lost', value: best ? { deliveredPerSec: best.deliveredPerSec, p99Ms: best.latencyMs.p99, streams: best.streams } : null, met: (best?.deliveredPerSec ?? 0) >= 20_000 },
    memoryPerIdleStream: { target: '<= 16 KiB', value: perStream, met: perStream !== null && perStream <= 16 },
    subscribeStorm10k: { target: '10k subscribes bootstrapped within 5000 ms', value: storm?.allBootstrappedMs ?? null, met: storm?.streams === 10_000 && storm.allBootstrappedMs !== null && storm.allBootstrappedMs <= 5000 },
  };
}

/**
 * The targets against the intrinsic-work push server, at the largest level: CPU per delivery
 * at `rate` deliveries/s ≤ 1.25 × its CPU per delivery, p99 at that rate ≤ 50 ms, and the
 * subscribe storm ≤ 1.5 × its storm time.
 */
function intrinsicTargets(levels, intrinsicLevels, rate = 30_000) {
  const top = levels[levels.length - 1];
  const floor = intrinsicLevels.find((l) => l.streams === top?.streams);
  const at = (level) => (level?.fanout ?? []).find((f) => f.offeredDeliveriesPerSec === rate);
  const ratio = (a, b) => (a == null || b == null || b === 0 ? null : Math.round((a / b) * 1000) / 1000);
  const cpu = ratio(at(top)?.cpuPerDeliveryUs, at(floor)?.cpuPerDeliveryUs);
  const p99 = at(top)?.latencyMs?.p99 ?? null;
  const storm = ratio(top?.subscribeStorm?.allBootstrappedMs, floor?.subscribeStorm?.allBootstrappedMs);
  return {
    cpuPerDeliveryVsIntrinsic: {
      target: `<= 1.25 x intrinsic at ${rate} deliveries/s, ${top?.streams} streams`,
      value: cpu,
      gatewayUs: at(top)?.cpuPerDeliveryUs ?? null,
      intrinsicUs: at(floor)?.cpuPerDeliveryUs ?? null,
      met: cpu !== null && cpu <= 1.25 && (at(top)?.lost ?? 1) === 0,
    },
    p99AtRate: { target: `<= 50 ms at ${rate} deliveries/s, ${top?.streams} streams`, value: p99, intrinsicMs: at(floor)?.latencyMs?.p99 ?? null, met: p99 !== null && p99 <= 50 },
    stormVsIntrinsic: { target: '<= 1.5 x intrinsic', value: storm, met: storm !== null && storm <= 1.5 },
  };
}

/** Per level: gateway ÷ bare for the storm time, RSS per idle stream and best rate at p99 ≤ 100 ms. */
function baselineRatios(levels, bareLevels) {
  const best = (level) => Math.max(0, ...(level?.fanout ?? []).filter((f) => f.latencyMs.p99 <= 100 && f.lost === 0).map((f) => f.deliveredPerSec));
  const ratio = (a, b) => (a == null || b == null || b === 0 ? null : Math.round((a / b) * 100) / 100);
  return levels.map((level) => {
    const bare = bareLevels.find((b) => b.streams === level.streams);
    return {
      streams: level.streams,
      storm: ratio(level.subscribeStorm?.allBootstrappedMs, bare?.subscribeStorm?.allBootstrappedMs),
      memoryPerIdleStream: ratio(level.memory?.perStreamKiB, bare?.memory?.perStreamKiB),
      bestDeliveriesPerSec: ratio(best(level), best(bare)),
    };
  });
}

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', streams: 'numbers', connections: 'number', 'devices-per-user': 'number', rates: 'numbers', 'step-seconds': 'number', 'settle-seconds': 'number', 'storm-timeout-ms': 'number', payload: 'number', 'no-bare': 'boolean', 'no-intrinsic': 'boolean', 'before-main': 'string', ...GATEWAY_ENV_OPTION };

export async function runPush(argv) {
  const args = parseOptions('push.mjs', OPTIONS, argv);
  const quick = args.quick;
  const list = (name, fallback) => (typeof args[name] === 'string' ? args[name].split(',').map(Number) : fallback);
  const params = {
    quick,
    streams: list('streams', quick ? [1000, 10000] : [1000, 5000, 10000]),
    connections: num(args, 'connections', 100),
    devicesPerUser: num(args, 'devices-per-user', 4),
    rates: list('rates', quick ? [5000, 25000] : [5000, 10000, 20000, 30000, 40000]),
    stepSeconds: num(args, 'step-seconds', quick ? 2 : 5),
    stormTimeoutMs: num(args, 'storm-timeout-ms', 60_000),
    settleSeconds: num(args, 'settle-seconds', quick ? 25 : 40),
    payloadBytes: num(args, 'payload', 64),
    // The bare grpc-js fan-out server (bench/bare-push.mjs) at every level (--no-bare skips it).
    bare: args['no-bare'] !== true,
    // The intrinsic-work push server (bench/intrinsic-push.mjs) at every level: the targets'
    // yardstick (--no-intrinsic skips it).
    intrinsic: args['no-intrinsic'] !== true,
    // Another build of the binary, run at every level just before this one (before/after).
    beforeMain: typeof args['before-main'] === 'string' ? args['before-main'] : undefined,
  };
  params.payloadBase64 = Buffer.alloc(params.payloadBytes, 7).toString('base64');
  console.log(`push fan-out benchmark ${JSON.stringify({ ...params, payloadBase64: undefined })}`);
  const before = machineSnapshot();
  const redis = await startRedisServer();
  const raw = await connectRedis(redis);
  const signer = writeSignerKey();
  const maxStreams = Math.max(...params.streams);
  const devices = await step(`generating ${fmt(maxStreams)} device keys`, () => makeDevices(maxStreams, { perUser: params.devicesPerUser, label: 'push' }));
  await step('writing session records', () => writeSessions(raw, devices));
  const levels = [];
  const levelsBefore = [];
  const levelsBare = [];
  const levelsIntrinsic = [];
  try {
    for (const streams of params.streams) {
      if (params.bare) levelsBare.push(await step(`level ${fmt(streams)} streams, BARE baseline`, () => runLevel(redis, raw, signer, devices, streams, params, { bare: true })));
      if (params.intrinsic) {
        levelsIntrinsic.push(await step(`level ${fmt(streams)} streams, INTRINSIC-WORK baseline`, () => runLevel(redis, raw, signer, devices, streams, params, { intrinsic: true })));
      }
      if (params.beforeMain) {
        levelsBefore.push(await step(`level ${fmt(streams)} streams, BEFORE build`, () => runLevel(redis, raw, signer, devices, streams, params, { main: params.beforeMain })));
      }
      levels.push(await step(`level ${fmt(streams)} streams`, () => runLevel(redis, raw, signer, devices, streams, params)));
    }
  } finally {
    await raw.quit().catch(() => undefined);
    await redis.stop();
  }
  const targets = { ...targetsOf(levels), ...(levelsIntrinsic.length > 0 ? intrinsicTargets(levels, levelsIntrinsic) : {}) };
  const targetsBefore = levelsBefore.length > 0 ? { ...targetsOf(levelsBefore), ...(levelsIntrinsic.length > 0 ? intrinsicTargets(levelsBefore, levelsIntrinsic) : {}) } : undefined;
  const baseline = levelsBare.length > 0 ? { what: 'bench/bare-push.mjs: bare grpc-js fan-out, no checks, unsigned events', levels: levelsBare, ratios: baselineRatios(levels, levelsBare) } : undefined;
  if (baseline) console.log(`  vs bare fan-out: ${JSON.stringify(baseline.ratios)}`);
  const intrinsicBaseline =
    levelsIntrinsic.length > 0
      ? { what: 'bench/intrinsic-push.mjs: bare fan-out + subscribe checks + one signature per event + entry validation', levels: levelsIntrinsic, ratios: baselineRatios(levels, levelsIntrinsic) }
      : undefined;
  if (intrinsicBaseline) console.log(`  vs intrinsic-work push server: ${JSON.stringify(intrinsicBaseline.ratios)}`);
  const out = {
    benchmark: 'push',
    quick,
    params: { ...params, payloadBase64: undefined },
    machine: machineInfo(),
    noise: { before, after: machineSnapshot() },
    processes: 'load generator and bench clients (this process), gateway child, redis-server; loopback',
    results: { levels, targets, ...(targetsBefore ? { levelsBefore, targetsBefore } : {}), ...(baseline ? { baseline } : {}), ...(intrinsicBaseline ? { intrinsicBaseline } : {}) },
  };
  if (targetsBefore) console.log(`  before: ${Object.entries(targetsBefore).map(([k, v]) => `${k} ${JSON.stringify(v.value)}`).join(', ')}`);
  console.log(`  targets: ${Object.entries(targets).map(([k, v]) => `${k} ${v.met ? 'met' : 'MISSED'}`).join(', ')}`);
  console.log(`  written ${writeResult('push', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runPush(process.argv.slice(2));
  process.exit(0);
}
