// Commands benchmark: closed-loop ExecuteCommand load with pre-signed requests against
// (a) the built gateway binary (real redis-server, real echo downstream), (b) the
// intrinsic-work proxy (bench/intrinsic-proxy.mjs: only the work no gateway can skip; the
// target's yardstick) and (c) a bare grpc-js forwarding proxy with no checks, in the same run
// on the same machine.
// Also the single-thread Ed25519 verify+sign floor.
//
//   node bench/commands.mjs [--quick] [--duration 10] [--warmup 3] [--concurrency 64]
//        [--channels 8] [--rounds 2] [--max-rate 8000] [--payload 64] [--compare-log-level]
//        [--replicated [--baselines]]
//
// --replicated (issue 21): Redis gets a replica on loopback and the closed loop runs two gateway
// variants round by round, `gateway` (replay reservations wait for the replica, the default with
// replicas) and `gateway-unreplicated` (GATEWAY_REDIS_REPLAY_MIN_REPLICAS=0); the baselines are
// skipped unless --baselines (target: throughput >= 0.95x, p50 <= +0.5 ms).
//
// Processes: this one (load generator), the gateway, the bare proxy and the echo downstream
// are separate processes; redis-server too. All traffic is on loopback.
import { randomBytes, sign, verify, generateKeyPairSync } from 'node:crypto';
import { freePort } from '@edge-gateway/test-utils';
import { commandResultBytes } from '@edge-gateway/core';
import {
  cpuSeconds,
  fmt,
  machineInfo,
  machineSnapshot,
  num,
  parseOptions,
  GATEWAY_ENV_OPTION,
  rawClients,
  replicatedVariants,
  signedCommand,
  startCommandRig,
  GatewayChild,
  step,
  summarize,
  writeResult,
} from './lib.mjs';

/** Single-thread node:crypto Ed25519 floor: verify+sign pairs per second, and each alone. */
export function ed25519Floor(seconds = 1) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const data = commandResultBytes({ requestId: 'r-1234567890', resultCode: 'ok', timestampMs: Date.now(), payload: randomBytes(64) });
  const sig = sign(null, data, privateKey);
  const run = (fn) => {
    for (let i = 0; i < 200; i += 1) fn();
    let n = 0;
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    while (performance.now() < end) {
      for (let i = 0; i < 100; i += 1) fn();
      n += 100;
    }
    return Math.round(n / ((performance.now() - t0) / 1000));
  };
  const signOps = run(() => sign(null, data, privateKey));
  const verifyOps = run(() => verify(null, data, publicKey, sig));
  const pairOps = run(() => {
    verify(null, data, publicKey, sig);
    sign(null, data, privateKey);
  });
  return { signPerSec: signOps, verifyPerSec: verifyOps, verifyPlusSignPerSec: pairOps };
}

/**
 * Closed loop: `concurrency` callers, each sending the next pre-encoded request as soon as its
 * previous one answered, for `warmupMs` (not recorded) then `durationMs`.
 */
async function closedLoop(clients, requests, { concurrency, warmupMs, durationMs, pid }) {
  let next = 0;
  const latencies = new Float64Array(requests.length);
  let recorded = 0;
  let errors = 0;
  const errorCodes = {};
  let recording = false;
  let stopping = false;
  let exhausted = false;
  let tStart = 0;
  let tEnd = 0;
  let cpu0 = 0;

  const worker = (w) =>
    new Promise((done) => {
      const client = clients[w % clients.length];
      const fire = () => {
        if (stopping) return done();
        if (next >= requests.length) {
          exhausted = true;
          stopping = true;
          return done();
        }
        const request = requests[next++];
        const t0 = performance.now();
        const rec = recording;
        client.executeCommand(request, { deadline: Date.now() + 10_000 }, (error) => {
          if (rec && recording) {
            if (error) {
              errors += 1;
              errorCodes[error.code] = (errorCodes[error.code] ?? 0) + 1;
            } else {
              latencies[recorded++] = performance.now() - t0;
            }
          }
          fire();
        });
      };
      fire();
    });

  const workers = [];
  for (let w = 0; w < concurrency; w += 1) workers.push(worker(w));
  await new Promise((r) => setTimeout(r, warmupMs));
  cpu0 = pid ? cpuSeconds(pid) : 0;
  recording = true;
  tStart = performance.now();
  await new Promise((r) => {
    const timer = setTimeout(r, durationMs);
    const poll = setInterval(() => {
      if (exhausted) {
        clearTimeout(timer);
        r();
      }
    }, 20);
    timer.unref?.();
    setTimeout(() => clearInterval(poll), durationMs + 10);
  });
  tEnd = performance.now();
  recording = false;
  const cpu = pid ? cpuSeconds(pid) - cpu0 : NaN;
  stopping = true;
  await Promise.all(workers);
  const seconds = (tEnd - tStart) / 1000;
  return { latencies, recorded, errors, errorCodes, seconds, exhausted, serverCpuSeconds: cpu, used: next };
}

function report(label, runs) {
  const total = runs.reduce((a, r) => a + r.recorded, 0);
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  const merged = new Float64Array(total);
  let o = 0;
  for (const r of runs) {
    merged.set(r.latencies.subarray(0, r.recorded), o);
    o += r.recorded;
  }
  const lat = summarize(merged);
  const cpu = runs.reduce((a, r) => a + r.serverCpuSeconds, 0);
  return {
    label,
    throughputPerSec: Math.round(total / seconds),
    latencyMs: lat,
    errors: runs.reduce((a, r) => a + r.errors, 0),
    errorCodes: runs.reduce((acc, r) => {
      for (const [k, v] of Object.entries(r.errorCodes)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}),
    exhausted: runs.some((r) => r.exhausted),
    measuredSeconds: Math.round(seconds * 100) / 100,
    serverCpuPercent: Math.round((cpu / seconds) * 100),
    rounds: runs.map((r) => ({ throughputPerSec: Math.round(r.recorded / r.seconds), ...summarize(r.latencies, r.recorded) })),
  };
}

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', duration: 'number', warmup: 'number', concurrency: 'number', channels: 'number', rounds: 'number', 'max-rate': 'number', payload: 'number', devices: 'number', 'compare-log-level': 'boolean', 'before-main': 'string', replicated: 'boolean', baselines: 'boolean', ...GATEWAY_ENV_OPTION };

export async function runCommands(argv) {
  const args = parseOptions('commands.mjs', OPTIONS, argv);
  const quick = args.quick;
  const params = {
    durationSec: num(args, 'duration', quick ? 3 : 10),
    warmupSec: num(args, 'warmup', quick ? 1 : 3),
    concurrency: num(args, 'concurrency', 64),
    channels: num(args, 'channels', 8),
    rounds: num(args, 'rounds', quick ? 1 : 2),
    maxRate: num(args, 'max-rate', 8000),
    payloadBytes: num(args, 'payload', 64),
    devices: num(args, 'devices', 16),
    compareLogLevel: args['compare-log-level'] === true,
    // Another build of the binary to run as a third variant (before/after an optimisation).
    beforeMain: typeof args['before-main'] === 'string' ? args['before-main'] : undefined,
    replicated: args.replicated === true,
  };
  const baselines = !params.replicated || args.baselines === true;
  console.log(`commands benchmark ${JSON.stringify(params)}`);
  const before = machineSnapshot();

  const floor = await step('ed25519 single-thread floor (node:crypto)', () => ed25519Floor(quick ? 0.5 : 1));
  console.log(`    verify+sign ${fmt(floor.verifyPlusSignPerSec)}/s (verify ${fmt(floor.verifyPerSec)}/s, sign ${fmt(floor.signPerSec)}/s)`);

  const rig = await startCommandRig({ deviceCount: params.devices, label: 'cmd', replica: params.replicated });
  const { proxy, devices } = rig;

  const perRun = Math.ceil(params.maxRate * (params.durationSec + params.warmupSec));
  const variants = params.replicated ? replicatedVariants(rig) : [{ label: 'gateway', env: {} }];
  if (params.compareLogLevel) variants.push({ label: 'gateway-log-warn', env: { GATEWAY_LOG_LEVEL: 'warn' } });
  if (params.beforeMain) variants.unshift({ label: 'gateway-before', env: {}, main: params.beforeMain });
  const runs = { bare: [], intrinsic: [], gateway: [], 'gateway-log-warn': [], 'gateway-before': [], 'gateway-unreplicated': [] };
  const payload = randomBytes(params.payloadBytes);
  const loop = { concurrency: params.concurrency, warmupMs: params.warmupSec * 1000, durationMs: params.durationSec * 1000 };

  try {
    const bareClients = await rawClients(`127.0.0.1:${proxy.port}`, params.channels);
    const intrinsicClients = await rawClients(`127.0.0.1:${rig.intrinsic.port}`, params.channels);
    // Every server runs for the whole run, the gateway builds like the baselines: each is
    // started once, before round 1 (a gateway spawned afresh per round was measured in its
    // first seconds of life against baselines that had been running for minutes).
    for (const variant of variants) {
      // With GATEWAY_LOG_LEVEL=warn the listener lines are not logged: bind a known port.
      const quiet = variant.env.GATEWAY_LOG_LEVEL === 'warn';
      const fixed = quiet ? `127.0.0.1:${await freePort()}` : undefined;
      variant.gateway = new GatewayChild(rig.gatewayEnv({ ...(fixed ? { GATEWAY_AUTHENTICATED_GRPC_ADDR: fixed } : {}), ...variant.env }), { main: variant.main });
      variant.clients = await rawClients(fixed ?? (await variant.gateway.started()).grpc, params.channels);
    }
    for (let round = 0; round < params.rounds; round += 1) {
      for (const variant of variants) {
        // Pre-sign outside the timed window: unique request ids, sessions already in Redis.
        const requests = await step(`round ${round + 1}: pre-signing ${fmt(perRun)} requests`, () => {
          const out = new Array(perRun);
          const ts = Date.now();
          for (let i = 0; i < perRun; i += 1) out[i] = signedCommand(devices[i % devices.length], 'bench.echo', payload, ts);
          return out;
        });
        if (baselines) {
          const bare = await step(`round ${round + 1}: bare proxy`, () => closedLoop(bareClients, requests, { ...loop, pid: proxy.pid }));
          runs.bare.push(bare);
          console.log(`    bare: ${fmt(bare.recorded / bare.seconds)}/s p50 ${summarize(bare.latencies, bare.recorded).p50} ms p99 ${summarize(bare.latencies, bare.recorded).p99} ms`);
          // The intrinsic-work proxy reserves each request id in Redis: it gets its own requests.
          const intrinsicRequests = requests.map((_, i) => signedCommand(devices[i % devices.length], 'bench.echo', payload, Date.now()));
          const intrinsic = await step(`round ${round + 1}: intrinsic-work proxy`, () => closedLoop(intrinsicClients, intrinsicRequests, { ...loop, pid: rig.intrinsic.pid }));
          runs.intrinsic.push(intrinsic);
          console.log(`    intrinsic: ${fmt(intrinsic.recorded / intrinsic.seconds)}/s p50 ${summarize(intrinsic.latencies, intrinsic.recorded).p50} ms p99 ${summarize(intrinsic.latencies, intrinsic.recorded).p99} ms errors ${intrinsic.errors}`);
        }

        const result = await step(`round ${round + 1}: ${variant.label}`, () => closedLoop(variant.clients, requests, { ...loop, pid: variant.gateway.pid }));
        runs[variant.label].push(result);
        const s = summarize(result.latencies, result.recorded);
        console.log(`    ${variant.label}: ${fmt(result.recorded / result.seconds)}/s p50 ${s.p50} ms p99 ${s.p99} ms errors ${result.errors}${result.exhausted ? ' (pre-signed pool exhausted: raise --max-rate)' : ''}`);
      }
    }
    for (const c of [...bareClients, ...intrinsicClients]) c.close();
  } finally {
    for (const variant of variants) {
      for (const c of variant.clients ?? []) c.close();
      await variant.gateway?.stop();
    }
    await rig.stop();
  }

  const gateway = report('gateway', runs.gateway);
  const ratio = (a, b) => Math.round((a / b) * 1000) / 1000;
  if (!baselines) {
    const off = report('gateway (GATEWAY_REDIS_REPLAY_MIN_REPLICAS=0)', runs['gateway-unreplicated']);
    const throughput = ratio(gateway.throughputPerSec, off.throughputPerSec);
    const p50Delta = Math.round((gateway.latencyMs.p50 - off.latencyMs.p50) * 1000) / 1000;
    const results = {
      ed25519Floor: floor,
      gateway,
      gatewayUnreplicated: off,
      replicated: {
        throughput: { target: '>= 0.95', value: throughput, met: throughput >= 0.95 },
        p50DeltaMs: { target: '<= 0.5', value: p50Delta, met: p50Delta <= 0.5 },
        p99DeltaMs: Math.round((gateway.latencyMs.p99 - off.latencyMs.p99) * 1000) / 1000,
        serverCpuPercent: { replicated: gateway.serverCpuPercent, unreplicated: off.serverCpuPercent },
      },
    };
    console.log(`  replicated ÷ unreplicated: closed-loop throughput ${throughput} (target >= 0.95), p50 ${p50Delta >= 0 ? '+' : ''}${p50Delta} ms (target <= +0.5), p99 ${results.replicated.p99DeltaMs >= 0 ? '+' : ''}${results.replicated.p99DeltaMs} ms`);
    const out = { benchmark: 'commands-replicated', quick, params, machine: machineInfo(), noise: { before, after: machineSnapshot() }, results };
    console.log(`  written ${writeResult('commands-replicated', out)}`);
    return out;
  }
  const bare = report('bare grpc-js proxy', runs.bare);
  const intrinsic = report('intrinsic-work proxy', runs.intrinsic);
  const results = {
    ed25519Floor: floor,
    bare,
    intrinsic,
    gateway,
    ...(params.compareLogLevel ? { gatewayLogWarn: report('gateway (GATEWAY_LOG_LEVEL=warn)', runs['gateway-log-warn']) } : {}),
    ...(params.beforeMain ? { gatewayBefore: report(`gateway before (${params.beforeMain})`, runs['gateway-before']) } : {}),
    // Gateway ÷ the intrinsic-work proxy (the target's yardstick) and ÷ the bare proxy.
    ratios: {
      throughput: ratio(gateway.throughputPerSec, intrinsic.throughputPerSec),
      p99: ratio(gateway.latencyMs.p99, intrinsic.latencyMs.p99),
      p50: ratio(gateway.latencyMs.p50, intrinsic.latencyMs.p50),
    },
    ratiosVsBare: {
      throughput: ratio(gateway.throughputPerSec, bare.throughputPerSec),
      p99: ratio(gateway.latencyMs.p99, bare.latencyMs.p99),
      intrinsicThroughput: ratio(intrinsic.throughputPerSec, bare.throughputPerSec),
    },
  };
  if (results.gatewayBefore) {
    results.ratiosBefore = {
      throughput: ratio(results.gatewayBefore.throughputPerSec, intrinsic.throughputPerSec),
      p99: ratio(results.gatewayBefore.latencyMs.p99, intrinsic.latencyMs.p99),
      p50: ratio(results.gatewayBefore.latencyMs.p50, intrinsic.latencyMs.p50),
    };
    console.log(`  before: throughput ${results.ratiosBefore.throughput} x intrinsic, p99 ${results.ratiosBefore.p99} x intrinsic`);
  }
  results.targets = {
    throughputVsIntrinsic: { target: '>= 0.9', value: results.ratios.throughput, met: results.ratios.throughput >= 0.9 },
  };
  console.log(`  ratios: throughput ${results.ratios.throughput} x intrinsic-work proxy (target >= 0.9), p99 ${results.ratios.p99} x intrinsic; vs bare: ${JSON.stringify(results.ratiosVsBare)}`);
  const out = {
    benchmark: 'commands',
    quick,
    params,
    machine: machineInfo(),
    noise: { before, after: machineSnapshot() },
    processes: 'load generator (this process), gateway child, bare proxy child, echo downstream child, redis-server: all separate processes on loopback',
    results,
  };
  const path = writeResult('commands', out);
  console.log(`  written ${path}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runCommands(process.argv.slice(2));
  process.exit(0);
}
