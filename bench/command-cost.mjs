// CPU cost per command: the gateway binary and the two baselines, the bare grpc-js proxy
// (bench/bare-proxy.mjs) and the intrinsic-work proxy (bench/intrinsic-proxy.mjs, the target's
// yardstick), under the same open-loop load at a fixed rate, well below saturation, with each process's
// CPU time (/proc/<pid>/stat, all threads) divided by the commands it answered. Far steadier
// than closed-loop throughput on a shared machine, so it is the tool for A/B checks of a change:
// pass --before-main <path to another build's apps/gateway/dist/main.js>; variants alternate
// round by round. Also reports the CPU of the echo downstream, redis-server and this process.
// The default rate, 800/s, is about 55 % of what the gateway and the intrinsic-work proxy each
// sustain closed-loop on the 2-CPU bench machine (~1,420/s, load generator included); at
// 1,500/s both fall behind and an open loop only measures a growing queue.
//
//   node bench/command-cost.mjs [--rate 800] [--max-in-flight N] [--duration 5] [--rounds 3] [--channels 8]
//        [--before-main <main.js>] [--no-bare] [--no-intrinsic] [--quick] [--replicated]
//
// --replicated (issue 21): the rig's Redis gets a replica on loopback and two gateway variants run
// round by round in the same run, `gateway` (replay reservations wait for the replica, the
// default with replicas) and `gateway-unreplicated` (GATEWAY_REDIS_REPLAY_MIN_REPLICAS=0); the
// result compares them (targets: CPU per command <= 1.05x, p50 <= +0.5 ms).
import { randomBytes } from 'node:crypto';
import {
  cpuSeconds,
  machineInfo,
  machineSnapshot,
  num,
  parseOptions,
  GATEWAY_ENV_OPTION,
  rawClients,
  replicatedVariants,
  signedCommand,
  sleep,
  startCommandRig,
  GatewayChild,
  summarize,
  writeResult,
} from './lib.mjs';

const selfCpuSeconds = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

/** Sends `rate` requests per second (1 ms ticks) for warm-up + duration; measures the latter. */
export async function openLoop(clients, requests, { rate, maxInFlight, warmupMs, durationMs, pids, onRecordStart }) {
  let next = 0;
  let inFlight = 0;
  let answered = 0;
  let errors = 0;
  let recording = false;
  const latencies = [];
  const started = performance.now();
  let sent = 0;
  let k = 0;
  const tick = setInterval(() => {
    const due = Math.floor(((performance.now() - started) * rate) / 1000);
    while (sent < due && inFlight < maxInFlight && next < requests.length) {
      sent += 1;
      inFlight += 1;
      const request = requests[next++];
      const t0 = performance.now();
      const counted = recording;
      clients[k++ % clients.length].executeCommand(request, { deadline: Date.now() + 10_000 }, (error) => {
        inFlight -= 1;
        if (!counted || !recording) return;
        if (error) errors += 1;
        else {
          answered += 1;
          latencies.push(performance.now() - t0);
        }
      });
    }
  }, 1);
  await sleep(warmupMs);
  await onRecordStart?.();
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, pid === 'self' ? selfCpuSeconds() : cpuSeconds(pid)]));
  recording = true;
  const t0 = performance.now();
  await sleep(durationMs);
  recording = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, (pid === 'self' ? selfCpuSeconds() : cpuSeconds(pid)) - cpu0[name]]));
  clearInterval(tick);
  const perCommandUs = Object.fromEntries(Object.entries(cpu).map(([name, s]) => [name, Math.round((s / Math.max(1, answered)) * 1e6)]));
  return {
    answeredPerSec: Math.round(answered / seconds),
    answered,
    errorsPerSec: Math.round(errors / seconds),
    serverCpuSeconds: cpu.server,
    errors,
    exhausted: next >= requests.length,
    cpuPerCommandUs: perCommandUs,
    latencyMs: summarize(Float64Array.from(latencies)),
    latenciesMs: latencies,
  };
}

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', rate: 'number', 'max-in-flight': 'number', duration: 'number', warmup: 'number', rounds: 'number', channels: 'number', payload: 'number', 'before-main': 'string', 'no-bare': 'boolean', 'no-intrinsic': 'boolean', replicated: 'boolean', ...GATEWAY_ENV_OPTION };

export async function runCommandCost(argv) {
  const args = parseOptions('command-cost.mjs', OPTIONS, argv);
  const quick = args.quick;
  const params = {
    rate: num(args, 'rate', 800),
    // At most this many commands in flight (a closed loop when the rate is out of reach): on
    // a machine too busy for the fixed rate, CPU per command stays comparable between builds.
    maxInFlight: num(args, 'max-in-flight', Infinity),
    durationSec: num(args, 'duration', quick ? 3 : 5),
    // 6 s: a freshly spawned gateway is still tiering its hot path up after 1.5 s at 500/s.
    warmupSec: num(args, 'warmup', 6),
    rounds: num(args, 'rounds', quick ? 1 : 3),
    channels: num(args, 'channels', 8),
    payloadBytes: num(args, 'payload', 64),
    beforeMain: typeof args['before-main'] === 'string' ? args['before-main'] : undefined,
    // The bare proxy too (--no-bare skips it, for quicker A/B runs).
    bare: args['no-bare'] !== true,
    // The intrinsic-work proxy (--no-intrinsic skips it, for gateway-vs-gateway A/B runs).
    intrinsic: args['no-intrinsic'] !== true,
    // Replicated reservations on vs GATEWAY_REDIS_REPLAY_MIN_REPLICAS=0, master + replica.
    replicated: args.replicated === true,
  };
  console.log(`command cost benchmark ${JSON.stringify(params)}`);
  const before = machineSnapshot();
  const rig = await startCommandRig({ label: 'cost', replica: params.replicated });
  const { echo, proxy, redis, devices } = rig;
  const payload = randomBytes(params.payloadBytes);
  const perRun = Math.ceil(Math.min(params.rate, params.maxInFlight * 1000) * (params.durationSec + params.warmupSec + 1));
  const presign = () => {
    const ts = Date.now();
    return Array.from({ length: perRun }, (_, i) => signedCommand(devices[i % devices.length], 'bench.echo', payload, ts));
  };
  const loop = { rate: params.rate, maxInFlight: params.maxInFlight, warmupMs: params.warmupSec * 1000, durationMs: params.durationSec * 1000 };
  const others = { echo: echo.pid, redis: redis.pid, ...(rig.replica ? { replica: rig.replica.pid } : {}), loadGenerator: 'self' };
  const variants = params.replicated ? replicatedVariants(rig) : [{ label: 'gateway' }];
  if (params.beforeMain) variants.push({ label: 'gateway-before', main: params.beforeMain });
  const rows = [];
  const latencies = {};
  try {
    const baselines = [
      ...(params.bare ? [{ label: 'bare', helper: proxy }] : []),
      ...(params.intrinsic ? [{ label: 'intrinsic', helper: rig.intrinsic }] : []),
    ];
    for (const baseline of baselines) baseline.clients = await rawClients(`127.0.0.1:${baseline.helper.port}`, params.channels);
    const record = (round, label, result) => {
      rows.push({ round, label, ...result, latenciesMs: undefined });
      (latencies[label] ??= []).push(...result.latenciesMs);
      console.log(`  round ${round} ${label}: ${JSON.stringify(result.cpuPerCommandUs)} µs CPU per command, ${result.answeredPerSec}/s, p50 ${result.latencyMs.p50} ms p99 ${result.latencyMs.p99} ms, errors ${result.errors}`);
    };
    // Every server runs for the whole run, the gateway builds like the baselines: each is
    // started once, before round 1, and measured in every round (a gateway spawned afresh per
    // round was measured in its first seconds of life, JIT tiering and heap growth included,
    // against baselines that had been running for minutes).
    for (const variant of variants) {
      variant.gateway = new GatewayChild(rig.gatewayEnv(variant.env ?? {}), { main: variant.main });
      variant.clients = await rawClients((await variant.gateway.started()).grpc, params.channels);
    }
    for (let round = 1; round <= params.rounds; round += 1) {
      for (const baseline of baselines) {
        record(round, baseline.label, await openLoop(baseline.clients, presign(), { ...loop, pids: { server: baseline.helper.pid, ...others } }));
      }
      for (const variant of variants) {
        record(round, variant.label, await openLoop(variant.clients, presign(), { ...loop, pids: { server: variant.gateway.pid, ...others } }));
      }
    }
    for (const baseline of baselines) for (const c of baseline.clients) c.close();
  } finally {
    for (const variant of variants) {
      for (const c of variant.clients ?? []) c.close();
      await variant.gateway?.stop();
    }
    await rig.stop();
  }
  const serverUs = (label, process = 'server') => {
    const values = rows.filter((r) => r.label === label).map((r) => r.cpuPerCommandUs[process]);
    return values.length === 0 ? null : { median: [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)], all: values };
  };
  const labels = [
    ...(params.bare ? ['bare'] : []),
    ...(params.intrinsic ? ['intrinsic'] : []),
    'gateway',
    ...(params.replicated ? ['gateway-unreplicated'] : []),
    ...(params.beforeMain ? ['gateway-before'] : []),
  ];
  const latencyMs = Object.fromEntries(labels.map((label) => [label, summarize(Float64Array.from(latencies[label] ?? []))]));
  const results = {
    rows,
    serverCpuPerCommandUs: { bare: serverUs('bare'), intrinsic: serverUs('intrinsic'), gateway: serverUs('gateway'), ...(params.beforeMain ? { gatewayBefore: serverUs('gateway-before') } : {}) },
    latencyMs,
  };
  const ratio = (a, b) => (a == null || b == null ? null : Math.round((a / b) * 1000) / 1000);
  const cpu = results.serverCpuPerCommandUs;
  const cpuRatio = ratio(cpu.gateway?.median, cpu.intrinsic?.median);
  const p99Ratio = ratio(latencyMs.gateway?.p99, latencyMs.intrinsic?.p99);
  results.targets = {
    cpuPerCommandVsIntrinsic: { target: '<= 1.10', value: cpuRatio, met: cpuRatio !== null && cpuRatio <= 1.1 },
    p99VsIntrinsic: { target: '<= 1.25', value: p99Ratio, met: p99Ratio !== null && p99Ratio <= 1.25 },
  };
  if (params.replicated) {
    const on = cpu.gateway?.median;
    const off = serverUs('gateway-unreplicated')?.median;
    const cpuReplicated = ratio(on, off);
    const p50Delta = Math.round(((latencyMs.gateway?.p50 ?? NaN) - (latencyMs['gateway-unreplicated']?.p50 ?? NaN)) * 1000) / 1000;
    results.replicated = {
      serverCpuPerCommandUs: { replicated: cpu.gateway, unreplicated: serverUs('gateway-unreplicated') },
      redisCpuPerCommandUs: {
        master: { replicated: serverUs('gateway', 'redis'), unreplicated: serverUs('gateway-unreplicated', 'redis') },
        replica: { replicated: serverUs('gateway', 'replica'), unreplicated: serverUs('gateway-unreplicated', 'replica') },
      },
      cpuPerCommandReplicatedVsUnreplicated: { target: '<= 1.05', value: cpuReplicated, met: cpuReplicated !== null && cpuReplicated <= 1.05 },
      p50DeltaMs: { target: '<= 0.5', value: p50Delta, met: p50Delta <= 0.5 },
      p99DeltaMs: Math.round(((latencyMs.gateway?.p99 ?? NaN) - (latencyMs['gateway-unreplicated']?.p99 ?? NaN)) * 1000) / 1000,
    };
    console.log(`  replicated ÷ unreplicated: CPU per command ${cpuReplicated} (target <= 1.05), p50 ${p50Delta >= 0 ? '+' : ''}${p50Delta} ms (target <= +0.5), p99 ${results.replicated.p99DeltaMs >= 0 ? '+' : ''}${results.replicated.p99DeltaMs} ms`);
  }
  if (params.beforeMain) {
    results.before = {
      cpuPerCommandVsIntrinsic: ratio(cpu.gatewayBefore?.median, cpu.intrinsic?.median),
      p99VsIntrinsic: ratio(latencyMs['gateway-before']?.p99, latencyMs.intrinsic?.p99),
      cpuPerCommandGatewayVsBefore: ratio(cpu.gateway?.median, cpu.gatewayBefore?.median),
    };
  }
  console.log(`  median server CPU per command: ${JSON.stringify(Object.fromEntries(Object.entries(results.serverCpuPerCommandUs).map(([k, v]) => [k, v?.median])))} µs`);
  console.log(`  p99 over all rounds: ${JSON.stringify(Object.fromEntries(labels.map((l) => [l, latencyMs[l]?.p99])))} ms`);
  console.log(`  gateway ÷ intrinsic: CPU per command ${cpuRatio} (target <= 1.10), p99 ${p99Ratio} (target <= 1.25)${results.before ? `; before: ${JSON.stringify(results.before)}` : ''}`);
  const out = { benchmark: 'command-cost', quick, params, machine: machineInfo(), noise: { before, after: machineSnapshot() }, results };
  console.log(`  written ${writeResult('command-cost', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runCommandCost(process.argv.slice(2));
  process.exit(0);
}
