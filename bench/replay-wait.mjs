// Replicated replay reservations (issue 21, SPEC §5.2), measured on the adapter alone:
// RedisReplayStore against a master and a replica on loopback, closed loop at a few
// concurrencies, for the design choice behind it: one dedicated WAIT connection per master vs two
// taking turns, and no WAIT at all (GATEWAY_REDIS_REPLAY_MIN_REPLICAS=0) as the reference. Reports
// reservations/s, latency, this process's CPU per reservation and reservations per WAIT. The
// variants alternate round by round on the same servers.
//
//   node bench/replay-wait.mjs [--duration 4] [--warmup 1] [--rounds 3] [--concurrency 1,8,64]
import { createRedisClient, connectAndPing, RedisReplayStore } from '@edge-gateway/adapters-redis';
import { machineInfo, machineSnapshot, num, parseOptions, startRedisServer, summarize, writeResult } from './lib.mjs';

const args = parseOptions('replay-wait.mjs', { duration: 'number', warmup: 'number', rounds: 'number', concurrency: 'numbers', 'wait-timeout': 'number' });
const params = {
  durationSec: num(args, 'duration', 4),
  warmupSec: num(args, 'warmup', 1),
  rounds: num(args, 'rounds', 3),
  concurrency: String(args.concurrency ?? '1,8,64').split(',').map(Number),
  waitTimeoutMs: num(args, 'wait-timeout', 50),
};
console.log(`replay WAIT benchmark ${JSON.stringify(params)}`);
const before = machineSnapshot();

const master = await startRedisServer();
const replica = await startRedisServer({ password: master.password, extraArgs: ['--masterauth', master.password, '--replicaof', '127.0.0.1', String(master.port)] });
const admin = createRedisClient({ host: '127.0.0.1', port: master.port, password: master.password });
await connectAndPing(admin, 5000);
for (const deadline = Date.now() + 20_000; ; ) {
  await admin.command(['SET', 'bench:probe', '1']);
  // Its own connection's write: WAIT counts a replica only once it acknowledged it.
  if (Number(await admin.command(['WAIT', '1', '200'])) >= 1) break;
  if (Date.now() > deadline) throw new Error('replica never acknowledged');
}

const variants = [
  { label: 'no WAIT (min 0)', options: { minReplicas: 0 } },
  { label: 'WAIT, 1 connection', options: { minReplicas: 1, waitConnectionsPerMaster: 1 } },
  { label: 'WAIT, 2 connections', options: { minReplicas: 1, waitConnectionsPerMaster: 2 } },
];
for (const v of variants) {
  v.client = createRedisClient({ host: '127.0.0.1', port: master.port, password: master.password, clientName: 'bench' });
  await connectAndPing(v.client, 5000);
  v.store = new RedisReplayStore(v.client, { keyPrefix: 'bench:', waitTimeoutMs: params.waitTimeoutMs, ...v.options });
  await v.store.reserve('warm', `w-${v.label}`, 60_000);
}

const waits = async () => Number(/cmdstat_wait:calls=(\d+)/.exec(String(await admin.command(['INFO', 'commandstats'])))?.[1] ?? 0);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
let seq = 0;

async function closedLoop(store, concurrency) {
  let recording = false;
  let stopping = false;
  const latencies = [];
  let outcomes = { reserved: 0, other: 0 };
  const worker = async () => {
    while (!stopping) {
      const t0 = performance.now();
      const outcome = await store.reserve('ds', `r-${(seq += 1)}`, 60_000);
      if (recording) {
        latencies.push(performance.now() - t0);
        if (outcome === 'reserved') outcomes.reserved += 1;
        else outcomes.other += 1;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  await new Promise((r) => setTimeout(r, params.warmupSec * 1000));
  const waits0 = await waits();
  const cpu0 = cpu();
  recording = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, params.durationSec * 1000));
  recording = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpuUs = (cpu() - cpu0) * 1e6;
  const waitCalls = (await waits()) - waits0;
  stopping = true;
  await Promise.all(workers);
  const n = latencies.length;
  return { perSec: Math.round(n / seconds), cpuUsPerReservation: Math.round(cpuUs / Math.max(1, n)), perWait: waitCalls === 0 ? null : Math.round((n / waitCalls) * 10) / 10, outcomes, latencies };
}

const rows = [];
try {
  for (const concurrency of params.concurrency) {
    for (let round = 1; round <= params.rounds; round += 1) {
      for (const v of variants) {
        const r = await closedLoop(v.store, concurrency);
        const lat = summarize(Float64Array.from(r.latencies));
        rows.push({ concurrency, round, label: v.label, perSec: r.perSec, cpuUsPerReservation: r.cpuUsPerReservation, reservationsPerWait: r.perWait, outcomes: r.outcomes, p50: lat.p50, p99: lat.p99 });
        console.log(`  c=${concurrency} round ${round} ${v.label}: ${r.perSec}/s, p50 ${lat.p50} ms, p99 ${lat.p99} ms, ${r.cpuUsPerReservation} µs CPU, ${r.perWait ?? '-'} per WAIT, not reserved ${r.outcomes.other}`);
      }
    }
  }
} finally {
  for (const v of variants) {
    v.store.close();
    v.client.destroy();
  }
  admin.destroy();
  await replica.stop();
  await master.stop();
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const summary = [];
for (const concurrency of params.concurrency) {
  for (const v of variants) {
    const mine = rows.filter((r) => r.concurrency === concurrency && r.label === v.label);
    summary.push({
      concurrency,
      label: v.label,
      perSec: median(mine.map((r) => r.perSec)),
      p50: median(mine.map((r) => r.p50)),
      p99: median(mine.map((r) => r.p99)),
      cpuUsPerReservation: median(mine.map((r) => r.cpuUsPerReservation)),
      reservationsPerWait: median(mine.map((r) => r.reservationsPerWait ?? 0)) || null,
    });
  }
}
console.log('  medians over rounds:');
for (const s of summary) console.log(`    c=${s.concurrency} ${s.label}: ${s.perSec}/s p50 ${s.p50} ms p99 ${s.p99} ms ${s.cpuUsPerReservation} µs CPU ${s.reservationsPerWait ?? '-'} per WAIT`);
const out = { benchmark: 'replay-wait', params, machine: machineInfo(), noise: { before, after: machineSnapshot() }, results: { rows, summary } };
console.log(`  written ${writeResult('replay-wait', out)}`);
process.exit(0);
