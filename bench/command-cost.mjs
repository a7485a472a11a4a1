// CPU cost per command: the gateway binary and the bare grpc-js proxy (bench/bare-proxy.mjs)
// under the same open-loop load at a fixed rate, well below saturation, with each process's
// CPU time (/proc/<pid>/stat, all threads) divided by the commands it answered. Far steadier
// than closed-loop throughput on a shared machine, so it is the tool for A/B checks of a change:
// pass --before-main <path to another build's apps/gateway/dist/main.js>; variants alternate
// round by round. Also reports the CPU of the echo downstream, redis-server and this process.
//
//   node bench/command-cost.mjs [--rate 1500] [--duration 5] [--rounds 3] [--channels 8]
//        [--before-main <main.js>] [--quick]
import { randomBytes } from 'node:crypto';
import {
  cpuSeconds,
  machineInfo,
  machineSnapshot,
  num,
  parseArgs,
  rawClients,
  signedCommand,
  sleep,
  startCommandRig,
  withGatewayClients,
  summarize,
  writeResult,
} from './lib.mjs';

const selfCpuSeconds = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

/** Sends `rate` requests per second (1 ms ticks) for warm-up + duration; measures the latter. */
async function openLoop(clients, requests, { rate, warmupMs, durationMs, pids }) {
  let next = 0;
  let answered = 0;
  let errors = 0;
  let recording = false;
  const latencies = [];
  const started = performance.now();
  let sent = 0;
  let k = 0;
  const tick = setInterval(() => {
    const due = Math.floor(((performance.now() - started) * rate) / 1000);
    while (sent < due && next < requests.length) {
      sent += 1;
      const request = requests[next++];
      const t0 = performance.now();
      const counted = recording;
      clients[k++ % clients.length].executeCommand(request, { deadline: Date.now() + 10_000 }, (error) => {
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
    errors,
    exhausted: next >= requests.length,
    cpuPerCommandUs: perCommandUs,
    latencyMs: summarize(Float64Array.from(latencies)),
  };
}

export async function runCommandCost(argv) {
  const args = parseArgs(argv);
  const quick = args.quick;
  const params = {
    rate: num(args, 'rate', 1500),
    durationSec: num(args, 'duration', quick ? 3 : 5),
    warmupSec: num(args, 'warmup', 1.5),
    rounds: num(args, 'rounds', quick ? 1 : 3),
    channels: num(args, 'channels', 8),
    payloadBytes: num(args, 'payload', 64),
    beforeMain: typeof args['before-main'] === 'string' ? args['before-main'] : undefined,
  };
  console.log(`command cost benchmark ${JSON.stringify(params)}`);
  const before = machineSnapshot();
  const rig = await startCommandRig({ label: 'cost' });
  const { echo, proxy, redis, devices } = rig;
  const payload = randomBytes(params.payloadBytes);
  const perRun = Math.ceil(params.rate * (params.durationSec + params.warmupSec + 1));
  const presign = () => {
    const ts = Date.now();
    return Array.from({ length: perRun }, (_, i) => signedCommand(devices[i % devices.length], 'bench.echo', payload, ts));
  };
  const loop = { rate: params.rate, warmupMs: params.warmupSec * 1000, durationMs: params.durationSec * 1000 };
  const others = { echo: echo.pid, redis: redis.pid, loadGenerator: 'self' };
  const variants = [{ label: 'gateway' }];
  if (params.beforeMain) variants.push({ label: 'gateway-before', main: params.beforeMain });
  const rows = [];
  try {
    const bareClients = await rawClients(`127.0.0.1:${proxy.port}`, params.channels);
    for (let round = 1; round <= params.rounds; round += 1) {
      const bare = await openLoop(bareClients, presign(), { ...loop, pids: { server: proxy.pid, ...others } });
      rows.push({ round, label: 'bare', ...bare });
      console.log(`  round ${round} bare proxy: ${JSON.stringify(bare.cpuPerCommandUs)} µs CPU per command, ${bare.answeredPerSec}/s, p50 ${bare.latencyMs.p50} ms`);
      for (const variant of variants) {
        await withGatewayClients(rig.gatewayEnv(), { main: variant.main, channels: params.channels }, async (clients, gateway) => {
          const result = await openLoop(clients, presign(), { ...loop, pids: { server: gateway.pid, ...others } });
          rows.push({ round, label: variant.label, ...result });
          console.log(`  round ${round} ${variant.label}: ${JSON.stringify(result.cpuPerCommandUs)} µs CPU per command, ${result.answeredPerSec}/s, p50 ${result.latencyMs.p50} ms, errors ${result.errors}`);
        });
      }
    }
    for (const c of bareClients) c.close();
  } finally {
    await rig.stop();
  }
  const serverUs = (label) => {
    const values = rows.filter((r) => r.label === label).map((r) => r.cpuPerCommandUs.server);
    return values.length === 0 ? null : { median: [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)], all: values };
  };
  const results = { rows, serverCpuPerCommandUs: { bare: serverUs('bare'), gateway: serverUs('gateway'), ...(params.beforeMain ? { gatewayBefore: serverUs('gateway-before') } : {}) } };
  console.log(`  median server CPU per command: ${JSON.stringify(Object.fromEntries(Object.entries(results.serverCpuPerCommandUs).map(([k, v]) => [k, v?.median])))} µs`);
  const out = { benchmark: 'command-cost', quick, params, machine: machineInfo(), noise: { before, after: machineSnapshot() }, results };
  console.log(`  written ${writeResult('command-cost', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runCommandCost(process.argv.slice(2));
  process.exit(0);
}
