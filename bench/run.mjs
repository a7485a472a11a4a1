// Runs every benchmark in turn, then regenerates docs/performance.svg from the results.
//
//   node bench/run.mjs [--quick] [--only commands,command-cost,rate-limits,push,websocket-push,device-scale,revocation,lifecycle,soak,failover,failover-drill] [--soak-seconds N]
// `npm run bench` builds first. `--quick` (or BENCH_QUICK=1) keeps every benchmark short
// (soak 30 s); the full run takes about 15 minutes (soak 600 s) plus device-scale's, which at
// its defaults (5k, 10k and 18k devices, four transports, floor and gateway) takes about
// 90 minutes and wants a quiet machine. Other options go to every
// benchmark that declares them; an option no benchmark declares, or a bad value, exits 2.
import { runCommands, OPTIONS as commandsOptions } from './commands.mjs';
import { runCommandCost, OPTIONS as commandCostOptions } from './command-cost.mjs';
import { runRateLimits, OPTIONS as rateLimitsOptions } from './rate-limits.mjs';
import { runPush, OPTIONS as pushOptions } from './push.mjs';
import { runWebSocketPush, OPTIONS as webSocketPushOptions } from './websocket-push.mjs';
import { runDeviceScale, OPTIONS as deviceScaleOptions } from './device-scale.mjs';
import { runRevocation, OPTIONS as revocationOptions } from './revocation.mjs';
import { runLifecycle, OPTIONS as lifecycleOptions } from './lifecycle.mjs';
import { runSoak, OPTIONS as soakOptions } from './soak.mjs';
import { runFailover, OPTIONS as failoverOptions } from './failover.mjs';
import { runFailoverDrill, OPTIONS as failoverDrillOptions } from './failover-drill.mjs';
import { writeChart } from './chart.mjs';
import { argvFor, machineSnapshot, parseOptions } from './lib.mjs';

const all = {
  commands: [runCommands, commandsOptions],
  'command-cost': [runCommandCost, commandCostOptions],
  'rate-limits': [runRateLimits, rateLimitsOptions],
  push: [runPush, pushOptions],
  'websocket-push': [runWebSocketPush, webSocketPushOptions],
  'device-scale': [runDeviceScale, deviceScaleOptions],
  revocation: [runRevocation, revocationOptions],
  lifecycle: [runLifecycle, lifecycleOptions],
  soak: [runSoak, soakOptions],
  failover: [runFailover, failoverOptions],
  'failover-drill': [runFailoverDrill, failoverDrillOptions],
};
// Every benchmark's options (a name two benchmarks read differently is taken as a string here
// and checked by each benchmark's own parser below), strictly: a mistyped flag exits 2.
const spec = { quick: 'boolean', only: { list: Object.keys(all) } };
for (const [, options] of Object.values(all)) {
  for (const [name, kind] of Object.entries(options)) spec[name] = name in spec && JSON.stringify(spec[name]) !== JSON.stringify(kind) ? 'string' : kind;
}
const args = parseOptions('run.mjs', spec, process.argv.slice(2), {
  usage: `usage: node bench/run.mjs [--quick] [--only ${Object.keys(all).join(',')}] [--soak-seconds N] [any option of the benchmarks run: see each script's header]`,
});
// The failover drill (about 20 minutes) runs only when named in --only.
const DEFAULT = Object.keys(all).filter((name) => name !== 'failover-drill');
const only = typeof args.only === 'string' ? args.only.split(',') : DEFAULT;
// Each benchmark gets the options it declares, checked before the first one starts.
const argvOf = Object.fromEntries(only.map((name) => [name, argvFor(all[name][1], args)]));
for (const name of only) parseOptions(`${name}.mjs`, all[name][1], argvOf[name]);
const noise = machineSnapshot();
console.log(`edge-gateway benchmarks${args.quick ? ' (quick)' : ''}: ${only.join(', ')}; load average ${noise.loadavg1}, ${noise.vitestProcesses} vitest processes running`);
const summary = {};
for (const name of only) {
  const [run] = all[name];
  console.log(`\n== ${name}`);
  const out = await run(argvOf[name]);
  summary[name] = out.results.targets ?? out.results.ratios;
}
console.log('\n== targets');
for (const [name, targets] of Object.entries(summary)) {
  for (const [key, t] of Object.entries(targets ?? {})) {
    console.log(`  ${t.met ? 'met   ' : 'MISSED'} ${name}.${key}: ${JSON.stringify(t.value)} (target ${t.target})`);
  }
}
console.log(`\nchart: ${writeChart()}`);
process.exit(0);
