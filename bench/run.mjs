// Runs every benchmark in turn, then regenerates docs/performance.svg from the results.
//
//   node bench/run.mjs [--quick] [--only commands,command-cost,rate-limits,push,websocket-push,revocation,lifecycle,soak,failover,failover-drill] [--soak-seconds N]
// `npm run bench` builds first. `--quick` (or BENCH_QUICK=1) keeps every benchmark short
// (soak 30 s); the full run takes about 15 minutes (soak 600 s). Other options are passed to
// every benchmark (each ignores what it does not know).
import { runCommands } from './commands.mjs';
import { runCommandCost } from './command-cost.mjs';
import { runRateLimits } from './rate-limits.mjs';
import { runPush } from './push.mjs';
import { runWebSocketPush } from './websocket-push.mjs';
import { runRevocation } from './revocation.mjs';
import { runLifecycle } from './lifecycle.mjs';
import { runSoak } from './soak.mjs';
import { runFailover } from './failover.mjs';
import { runFailoverDrill } from './failover-drill.mjs';
import { writeChart } from './chart.mjs';
import { machineSnapshot, parseArgs } from './lib.mjs';

const argv = process.argv.slice(2);
const args = parseArgs(argv);
const all = { commands: runCommands, 'command-cost': runCommandCost, 'rate-limits': runRateLimits, push: runPush, 'websocket-push': runWebSocketPush, revocation: runRevocation, lifecycle: runLifecycle, soak: runSoak, failover: runFailover, 'failover-drill': runFailoverDrill };
// The failover drill (about 20 minutes) runs only when named in --only.
const DEFAULT = Object.keys(all).filter((name) => name !== 'failover-drill');
const only = typeof args.only === 'string' ? args.only.split(',') : DEFAULT;
const noise = machineSnapshot();
console.log(`edge-gateway benchmarks${args.quick ? ' (quick)' : ''}: ${only.join(', ')}; load average ${noise.loadavg1}, ${noise.vitestProcesses} vitest processes running`);
const summary = {};
for (const name of only) {
  const run = all[name];
  if (run === undefined) throw new Error(`unknown benchmark "${name}" (have ${Object.keys(all).join(', ')})`);
  console.log(`\n== ${name}`);
  const out = await run(argv);
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
