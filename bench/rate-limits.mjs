// Rate limits (issue 23), one run, every gateway started once and measured round by round in
// turn under the same open-loop load (command-cost.mjs's loop):
//   none   no GATEWAY_RATE_LIMITS                                  (the yardstick)
//   local  GATEWAY_RATE_LIMITS=session=1000000/s, store local      (every command checked, none refused)
//   redis  the same rule, GATEWAY_RATE_LIMIT_STORE=redis            (checked in the reservation's round trip)
//   flood  GATEWAY_RATE_LIMITS=session=<rate/50>/s for one device sending at <rate>/s (50x its limit)
//   floor  bench/bare-refusal.mjs: a bare grpc-js server answering every command as a refusal
//          (same status, same trailers, nothing else): what a refusal costs over grpc-js
// Targets: CPU per command local <= 1.03 x none; Redis commands per command redis == none
// (the commands each gateway sent, from its own /metrics, per answered command); CPU per refused
// command of the flood <= 0.3 x the CPU of an admitted one (none's: the same rate, same machine,
// same round). The flood's refused cost = (its CPU - admitted x none's per-command CPU) / refused;
// the floor's = its CPU / its refusals, against the same admitted cost.
//
//   node bench/rate-limits.mjs [--rate 300] [--max-in-flight 32] [--duration 5] [--warmup 6] [--rounds 3] [--channels 8] [--quick]
import { randomBytes } from 'node:crypto';
import { openLoop } from './command-cost.mjs';
import { cpuSeconds, machineInfo, machineSnapshot, makeDevices, num, parseOptions, GATEWAY_ENV_OPTION, rawClients, signedCommand, sleep, startCommandRig, startHelper, GatewayChild, writeResult } from './lib.mjs';
import { RateLimits, parseRateLimitRules } from '../packages/core/dist/index.js';
import { InMemoryRateLimiter } from '../packages/core/dist/memory/index.js';

/**
 * What the limit step itself costs in the process: the buckets of a command and the in-memory
 * limiter's decision, for `sessions` sessions in turn (no I/O), in ns per command.
 */
function stepCostNs(iterations = 300_000, sessions = 16) {
  const limits = new RateLimits({ rules: parseRateLimitRules('session=1000000/s'), limiter: new InMemoryRateLimiter() });
  const subjects = Array.from({ length: sessions }, (_, i) => ({ deviceSessionId: `ds-${i}`, userId: `u-${i}` }));
  let admitted = 0;
  const run = (n) => {
    for (let i = 0; i < n; i++) {
      const subject = subjects[i % sessions];
      const buckets = limits.commandBuckets(subject, 'bench.echo');
      limits.refuseKnown(buckets, subject);
      if (limits.limiter.acquire(buckets, subject).admitted) admitted += 1;
    }
  };
  run(50_000);
  const t0 = process.cpuUsage();
  run(iterations);
  const used = process.cpuUsage(t0);
  return { nsPerCommand: Math.round(((used.user + used.system) * 1000) / iterations), admitted };
}

/** CPU seconds per second of `pid` while nothing is sent to it (timers, stream readers, metrics). */
async function idleCpuPerSecond(pid, ms = 2000) {
  await sleep(500);
  const c0 = cpuSeconds(pid);
  await sleep(ms);
  return (cpuSeconds(pid) - c0) / (ms / 1000);
}

/**
 * Request-path Redis commands (round trips) a gateway sent so far, by command, from its own
 * gateway_redis_command_duration_seconds_count series (every command it sends is measured
 * there; the commands a script runs inside Redis are not round trips and are not counted).
 * Only the request path: reservations (SET, EVALSHA, EVAL), session lookups (HGETALL), releases
 * (DEL); not the stream readers' periodic reads, which are the same for every variant.
 */
async function redisCalls(admin) {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  const calls = { total: 0 };
  for (const match of text.matchAll(/^gateway_redis_command_duration_seconds_count\{([^}]*)\} (\d+(?:\.\d+)?)/gm)) {
    const command = /command="([A-Z]+)"/.exec(match[1])?.[1];
    if (command === undefined || !['SET', 'EVALSHA', 'EVAL', 'HGETALL', 'DEL'].includes(command)) continue;
    calls[command] = (calls[command] ?? 0) + Number(match[2]);
    calls.total += Number(match[2]);
  }
  // The commands the gateway answered, from the same scrape: round trips per command without
  // the window's edges (answers still in flight) in the way.
  calls.commands = 0;
  for (const match of text.matchAll(/^gateway_grpc_requests_total\{([^}]*)\} (\d+(?:\.\d+)?)/gm)) {
    if (match[1].includes('method="ExecuteCommand"')) calls.commands += Number(match[2]);
  }
  return calls;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ratio = (a, b) => (a == null || b == null ? null : Math.round((a / b) * 1000) / 1000);

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', rate: 'number', 'max-in-flight': 'number', duration: 'number', warmup: 'number', rounds: 'number', channels: 'number', ...GATEWAY_ENV_OPTION };

export async function runRateLimits(argv) {
  const args = parseOptions('rate-limits.mjs', OPTIONS, argv);
  const quick = args.quick;
  const params = {
    rate: num(args, 'rate', 300),
    // A closed loop when the machine cannot keep the rate (a shared, loaded host): CPU per command stays comparable.
    maxInFlight: num(args, 'max-in-flight', 32),
    durationSec: num(args, 'duration', quick ? 3 : 5),
    warmupSec: num(args, 'warmup', quick ? 3 : 6),
    rounds: num(args, 'rounds', quick ? 1 : 3),
    channels: num(args, 'channels', 8),
    payloadBytes: 64,
  };
  const floodLimit = Math.max(1, Math.round(params.rate / 50));
  console.log(`rate limit benchmark ${JSON.stringify(params)}, flood limit session=${floodLimit}/s (50x)`);
  const before = machineSnapshot();
  const rig = await startCommandRig({ label: 'rl' });
  const { echo, redis, raw, devices } = rig;
  const [flooder] = makeDevices(1, { label: 'flood' });
  await raw.hSet(`gateway:session:${flooder.deviceSessionId}`, { device_session_id: flooder.deviceSessionId, user_id: flooder.userId, status: 'active', client_public_key: flooder.publicKeyBase64 });
  const payload = randomBytes(params.payloadBytes);
  const perRun = Math.ceil(params.rate * (params.durationSec + params.warmupSec + 1));
  const presign = (from) => {
    const ts = Date.now();
    return Array.from({ length: perRun }, (_, i) => signedCommand(from[i % from.length], 'bench.echo', payload, ts));
  };
  const variants = [
    { label: 'none', env: {}, from: devices },
    { label: 'local', env: { GATEWAY_RATE_LIMITS: 'session=1000000/s', GATEWAY_RATE_LIMIT_STORE: 'local' }, from: devices },
    { label: 'redis', env: { GATEWAY_RATE_LIMITS: 'session=1000000/s', GATEWAY_RATE_LIMIT_STORE: 'redis' }, from: devices },
    { label: 'flood', env: { GATEWAY_RATE_LIMITS: `session=${floodLimit}/s`, GATEWAY_RATE_LIMIT_STORE: 'local' }, from: [flooder] },
    { label: 'floor', helper: 'bare-refusal.mjs', from: [flooder] },
  ];
  const loop = { rate: params.rate, maxInFlight: params.maxInFlight, warmupMs: params.warmupSec * 1000, durationMs: params.durationSec * 1000 };
  const rows = [];
  try {
    for (const variant of variants) {
      if (variant.helper !== undefined) {
        variant.process = await startHelper(variant.helper);
        variant.clients = await rawClients(`127.0.0.1:${variant.process.port}`, params.channels);
        continue;
      }
      variant.gateway = new GatewayChild(rig.gatewayEnv({ ...variant.env, GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0' }));
      const addresses = await variant.gateway.started();
      variant.process = variant.gateway;
      variant.admin = addresses.adminHttp;
      variant.clients = await rawClients(addresses.grpc, params.channels);
    }
    for (let round = 1; round <= params.rounds; round += 1) {
      for (const variant of variants) {
        let calls0 = { total: 0 };
        const result = await openLoop(variant.clients, presign(variant.from), {
          ...loop,
          pids: { server: variant.process.pid, echo: echo.pid, redis: redis.pid },
          // INFO commandstats around the measured window only (openLoop samples CPU there too).
          onRecordStart: async () => (calls0 = variant.admin === undefined ? calls0 : await redisCalls(variant.admin)),
        });
        const calls1 = variant.admin === undefined ? { total: 0, commands: 0 } : await redisCalls(variant.admin);
        const calls = calls1.total - calls0.total;
        const commands = calls1.commands - (calls0.commands ?? 0);
        const perCommand = Object.fromEntries(
          Object.keys(calls1)
            .filter((k) => k !== 'total' && k !== 'commands')
            .map((k) => [k, commands === 0 ? null : Math.round(((calls1[k] - (calls0[k] ?? 0)) / commands) * 1000) / 1000]),
        );
        // The process's own background CPU (subscribers' reads, timers, metrics), measured right
        // after, comes off the loaded window: what remains is the requests' cost.
        const idle = await idleCpuPerSecond(variant.process.pid);
        const busyCpuUs = Math.max(0, result.serverCpuSeconds - idle * params.durationSec) * 1e6;
        const row = {
          round,
          label: variant.label,
          answeredPerSec: result.answeredPerSec,
          refusedPerSec: result.errorsPerSec,
          serverCpuUs: result.serverCpuSeconds * 1e6,
          idleCpuPerSecondMs: Math.round(idle * 1000),
          busyCpuUs,
          cpuPerAnsweredUs: result.cpuPerCommandUs.server,
          busyCpuPerAnsweredUs: result.answered === 0 ? null : Math.round(busyCpuUs / result.answered),
          redisCommandsPerAnswered: result.answered === 0 ? null : Math.round((calls / result.answered) * 1000) / 1000,
          redisCommandsPerAnsweredByName: perCommand,
          answered: result.answered,
          refused: result.errors,
          p99Ms: result.latencyMs.p99,
        };
        rows.push(row);
        console.log(`  round ${round} ${variant.label}: ${row.cpuPerAnsweredUs} µs CPU per answered (${row.busyCpuPerAnsweredUs} without the ${row.idleCpuPerSecondMs} ms/s idle), ${row.answeredPerSec}/s ok, ${row.refusedPerSec}/s refused, ${row.redisCommandsPerAnswered} redis commands per answered ${JSON.stringify(perCommand)}, p99 ${row.p99Ms} ms`);
      }
    }
  } finally {
    for (const variant of variants) {
      for (const c of variant.clients ?? []) c.close();
      await variant.process?.stop();
    }
    await rig.stop();
  }
  const of = (label) => rows.filter((r) => r.label === label);
  const cpu = (label) => median(of(label).map((r) => r.cpuPerAnsweredUs));
  const busy = (label) => median(of(label).map((r) => r.busyCpuPerAnsweredUs));
  // Per round: the flood's refused cost against the same round's admitted cost (none), both
  // without the processes' idle background CPU.
  const refusedRatios = of('flood').map((flood) => {
    const admittedUs = of('none').find((r) => r.round === flood.round).busyCpuPerAnsweredUs;
    const refusedUs = (flood.busyCpuUs - flood.answered * admittedUs) / Math.max(1, flood.refused);
    return { round: flood.round, refusedUs: Math.round(refusedUs), admittedUs, ratio: ratio(refusedUs, admittedUs) };
  });
  // The floor: a refusal over bare grpc-js (nothing but the status and its trailers), against the same round's admitted cost.
  const floorRatios = of('floor').map((floor) => {
    const admittedUs = of('none').find((r) => r.round === floor.round).busyCpuPerAnsweredUs;
    const refusedUs = floor.busyCpuUs / Math.max(1, floor.refused);
    const flood = refusedRatios.find((r) => r.round === floor.round);
    return { round: floor.round, refusedUs: Math.round(refusedUs), admittedUs, ratio: ratio(refusedUs, admittedUs), floodOverFloor: ratio(flood?.refusedUs, refusedUs) };
  });
  const step = stepCostNs();
  const redisPer = (label) => median(of(label).map((r) => r.redisCommandsPerAnswered));
  // Reservation round trips per command: SET alone without limits, the script with redis limits.
  const trips = (label) => median(of(label).map((r) => ['SET', 'EVALSHA', 'EVAL'].reduce((sum, k) => sum + (r.redisCommandsPerAnsweredByName[k] ?? 0), 0)));
  const results = {
    rows,
    cpuPerCommandUs: { none: cpu('none'), local: cpu('local'), redis: cpu('redis') },
    busyCpuPerCommandUs: { none: busy('none'), local: busy('local'), redis: busy('redis') },
    limitStepNsPerCommand: step.nsPerCommand,
    redisCommandsPerCommand: { none: redisPer('none'), local: redisPer('local'), redis: redisPer('redis') },
    reservationRoundTripsPerCommand: { none: trips('none'), local: trips('local'), redis: trips('redis') },
    flood: refusedRatios,
    floor: floorRatios,
  };
  const localRatio = ratio(results.busyCpuPerCommandUs.local, results.busyCpuPerCommandUs.none);
  const floodRatio = median(refusedRatios.map((r) => r.ratio));
  const sameRoundTrips = Math.abs(results.reservationRoundTripsPerCommand.redis - results.reservationRoundTripsPerCommand.none) < 0.02;
  results.targets = {
    localCpuVsNone: { target: '<= 1.03', value: localRatio, met: localRatio !== null && localRatio <= 1.03 },
    redisRoundTripsVsNone: { target: 'equal', value: `${results.reservationRoundTripsPerCommand.redis} vs ${results.reservationRoundTripsPerCommand.none}`, met: sameRoundTrips },
    refusedCpuVsAdmitted: { target: '<= 0.3', value: floodRatio, met: floodRatio !== null && floodRatio <= 0.3 },
    // Not a target: where the flood's figure could go at best over grpc-js on this machine.
    floorVsAdmitted: { value: median(floorRatios.map((r) => r.ratio)), floodOverFloor: median(floorRatios.map((r) => r.floodOverFloor)) },
  };
  console.log(`  CPU per command (median µs): ${JSON.stringify(results.cpuPerCommandUs)}, without idle ${JSON.stringify(results.busyCpuPerCommandUs)}; local ÷ none ${localRatio} (target <= 1.03); redis ÷ none ${ratio(results.busyCpuPerCommandUs.redis, results.busyCpuPerCommandUs.none)}`);
  console.log(`  the limit step alone (buckets + known-refusal check + in-memory GCRA, in process): ${step.nsPerCommand} ns per command`);
  console.log(`  request-path redis commands per command: ${JSON.stringify(results.redisCommandsPerCommand)}; reservation round trips (SET, or the script) ${JSON.stringify(results.reservationRoundTripsPerCommand)}`);
  console.log(`  flood (50x): refused ÷ admitted CPU per round ${JSON.stringify(refusedRatios)} (target <= 0.3)`);
  console.log(`  floor (bare grpc-js refusal): refused ÷ admitted CPU per round ${JSON.stringify(floorRatios)}`);
  const out = { benchmark: 'rate-limits', quick, params, machine: machineInfo(), noise: { before, after: machineSnapshot() }, results };
  console.log(`  written ${writeResult('rate-limits', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runRateLimits(process.argv.slice(2));
  process.exit(0);
}
