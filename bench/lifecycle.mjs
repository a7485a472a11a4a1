// Lifecycle benchmark against the built gateway binary:
//  - start: process spawn → `gateway started` log line, and → first `/readyz` 200 (polled every
//    2 ms), over several starts;
//  - SIGTERM with N open streams (default 10k) → process exit (and the exit code; every
//    stream should end UNAVAILABLE "gateway is shutting down").
// Baseline, same run: spawn → listening of the bare grpc-js proxy (bench/bare-proxy.mjs), a
// process that only loads grpc-js and the generated service and binds one port.
//
//   node bench/lifecycle.mjs [--quick] [--starts 5] [--streams 10000] [--connections 100]
import {
  GatewayChild,
  closeAll,
  connectRedis,
  fmt,
  gatewayEnv,
  httpStatus,
  machineInfo,
  machineSnapshot,
  makeDevices,
  num,
  parseOptions,
  GATEWAY_ENV_OPTION,
  openStreams,
  rawClients,
  signedSubscribe,
  sleep,
  startHelper,
  startRedisServer,
  step,
  summarize,
  writeResult,
  writeSessions,
  writeSignerKey,
} from './lib.mjs';

async function timeStart(redis, signer) {
  const gateway = new GatewayChild(gatewayEnv(redis, signer, { GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0' }));
  try {
    const pub = await gateway.waitFor('public http listener started');
    const port = String(pub.line.address).slice(String(pub.line.address).lastIndexOf(':') + 1);
    let readyAt;
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      if ((await httpStatus(`http://127.0.0.1:${port}/readyz`)) === 200) {
        readyAt = performance.now();
        break;
      }
      await sleep(2);
    }
    const started = await gateway.waitFor('gateway started');
    return { startedMs: started.at - gateway.spawnedAt, readyMs: readyAt === undefined ? NaN : readyAt - gateway.spawnedAt };
  } finally {
    await gateway.stop();
  }
}

/** Spawn → port printed, for the bare grpc-js proxy (the baseline). */
async function timeBareStart() {
  const t0 = performance.now();
  const helper = await startHelper('bare-proxy.mjs', ['127.0.0.1:1']);
  const ms = performance.now() - t0;
  await helper.stop();
  return ms;
}

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', starts: 'number', streams: 'number', connections: 'number', ...GATEWAY_ENV_OPTION };

export async function runLifecycle(argv) {
  const args = parseOptions('lifecycle.mjs', OPTIONS, argv);
  const quick = args.quick;
  const params = {
    starts: num(args, 'starts', quick ? 3 : 5),
    streams: num(args, 'streams', 10_000),
    connections: num(args, 'connections', 100),
  };
  console.log(`lifecycle benchmark ${JSON.stringify(params)}`);
  const before = machineSnapshot();
  const redis = await startRedisServer();
  const raw = await connectRedis(redis);
  const signer = writeSignerKey();
  const results = {};
  try {
    const starts = [];
    for (let i = 0; i < params.starts; i += 1) starts.push(await step(`start ${i + 1}`, () => timeStart(redis, signer)));
    results.start = {
      toGatewayStartedMs: summarize(starts.map((s) => s.startedMs)),
      toReadyzMs: summarize(starts.map((s) => s.readyMs)),
      runs: starts.map((s) => ({ startedMs: Math.round(s.startedMs), readyMs: Math.round(s.readyMs) })),
    };
    console.log(`    spawn → gateway started p50 ${fmt(results.start.toGatewayStartedMs.p50)} ms max ${fmt(results.start.toGatewayStartedMs.max)} ms; → /readyz 200 p50 ${fmt(results.start.toReadyzMs.p50)} ms max ${fmt(results.start.toReadyzMs.max)} ms`);
    const bare = [];
    for (let i = 0; i < params.starts; i += 1) bare.push(await step(`baseline start ${i + 1} (bare grpc-js proxy)`, () => timeBareStart()));
    results.baselineStart = { what: 'bench/bare-proxy.mjs: spawn → listening', toListeningMs: summarize(bare) };
    results.ratios = { startToReadyP50: Math.round((results.start.toReadyzMs.p50 / results.baselineStart.toListeningMs.p50) * 100) / 100 };
    console.log(`    baseline: bare grpc-js proxy spawn → listening p50 ${fmt(results.baselineStart.toListeningMs.p50)} ms; gateway /readyz p50 is ${results.ratios.startToReadyP50} x that`);

    const devices = await step(`generating ${fmt(params.streams)} devices`, () => makeDevices(params.streams, { label: 'life', perUser: 4 }));
    await writeSessions(raw, devices);
    const gateway = new GatewayChild(gatewayEnv(redis, signer, { GATEWAY_SHUTDOWN_TIMEOUT: '15s' }));
    let clients;
    let opened;
    try {
      const { grpc } = await gateway.started();
      clients = await rawClients(grpc, params.connections);
      const endCodes = {};
      opened = openStreams(clients, devices.map((d) => signedSubscribe(d)), {
        onEnd: (_i, error) => {
          const key = error ? `${error.code} ${error.details}` : 'ok';
          endCodes[key] = (endCodes[key] ?? 0) + 1;
        },
      });
      const openMs = await step(`opening ${fmt(params.streams)} streams`, () => opened.ready);
      await sleep(500);
      const t0 = performance.now();
      gateway.signal('SIGTERM');
      const exit = await gateway.exited;
      const exitMs = exit.at - t0;
      // Let the last statuses reach the clients.
      await sleep(200);
      results.sigterm = { streams: params.streams, openMs: Math.round(openMs), toExitMs: Math.round(exitMs), exitCode: exit.code, streamEndStatuses: endCodes };
      console.log(`    SIGTERM with ${fmt(params.streams)} streams → exit ${fmt(exitMs)} ms (code ${exit.code}); client statuses ${JSON.stringify(endCodes)}`);
    } finally {
      closeAll(opened?.calls, clients);
      await gateway.stop();
    }
  } finally {
    await raw.quit().catch(() => undefined);
    await redis.stop();
  }
  results.targets = {
    startToReady: { target: '<= 1000 ms (spawn → /readyz 200, worst start)', value: Math.round(results.start.toReadyzMs.max), met: results.start.toReadyzMs.max <= 1000 },
    sigtermExit: { target: `<= 2000 ms with ${params.streams} streams, exit code 0`, value: results.sigterm?.toExitMs ?? null, met: (results.sigterm?.toExitMs ?? Infinity) <= 2000 && results.sigterm?.exitCode === 0 },
  };
  const out = { benchmark: 'lifecycle', quick, params, machine: machineInfo(), noise: { before, after: machineSnapshot() }, results };
  console.log(`  written ${writeResult('lifecycle', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runLifecycle(process.argv.slice(2));
  process.exit(0);
}
