import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The bench scripts parse their flags strictly (bench/lib.mjs parseOptions over node:util
// parseArgs): a mistyped flag exits 2 with the usage line naming it, before anything starts
// (it used to be ignored and the run took its defaults). Every flag a script's header comment
// documents is still accepted. No benchmark runs here: each command line fails at parsing.

const BENCH = fileURLToPath(new URL('../../../bench/', import.meta.url));
const scripts = readdirSync(BENCH)
  .filter((f) => f.endsWith('.mjs') && f !== 'lib.mjs' && readFileSync(join(BENCH, f), 'utf8').includes('parseOptions('))
  .sort();

/** Runs `node bench/<script> ...args`; resolves with the exit code and stderr. */
function run(script: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(BENCH, script), ...args], { timeout: 25_000, env: { ...process.env, BENCH_QUICK: '' } }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stderr });
    });
  });
}

/**
 * The flags of a script's leading comment written `[--name]` or `[--name value]`, as
 * command-line arguments (`--name` or `--name=1`; a value's kind is checked after the parse).
 */
function documentedFlags(script: string): string[] {
  const header = readFileSync(join(BENCH, script), 'utf8')
    .split('\n')
    .filter((line, i, lines) => lines.slice(0, i + 1).every((l) => l.startsWith('//')))
    .join('\n');
  return [...header.matchAll(/\[--([a-z][a-z-]*)([^\][]*)/g)].map(([, name, rest]) => ((rest ?? '').trim() === '' ? `--${name}` : `--${name}=1`));
}

describe('bench scripts parse their flags strictly', () => {
  it('covers every bench script that takes flags', () => {
    expect(scripts).toEqual(expect.arrayContaining(['command-cost.mjs', 'commands.mjs', 'push.mjs', 'run.mjs', 'websocket-push.mjs', 'device-scale.mjs', 'protocol-encode.mjs', 'profile-summary.mjs']));
    expect(scripts.length).toBeGreaterThanOrEqual(15);
  });

  it.each(scripts)('%s: an unknown flag after every documented one exits 2 naming it', async (script) => {
    const flags = documentedFlags(script);
    expect(flags.length).toBeGreaterThan(0);
    const { code, stderr } = await run(script, [...flags, '--no-such-flag']);
    expect(code).toBe(2);
    // The parser stops at the first unknown option: the documented ones before it were all known.
    expect(stderr).toContain(`${script}: Unknown option '--no-such-flag'`);
    expect(stderr).toMatch(new RegExp(`^usage: node bench/${script.replace('.', '\\.')} `));
  });

  it.each([
    ['push.mjs', ['--rates', '5000,abc'], "push.mjs: --rates \"5000,abc\": not a comma-separated list of numbers"],
    ['commands.mjs', ['--duration=ten'], 'commands.mjs: --duration "ten": not a number'],
    ['failover.mjs', ['--mode', 'reboot'], 'failover.mjs: --mode "reboot": not one of failover, kill'],
    ['failover-drill.mjs', ['--scenarios', 'sentinel-kill,sentinel-typo'], 'failover-drill.mjs: --scenarios "sentinel-kill,sentinel-typo": unknown sentinel-typo'],
    ['websocket-push.mjs', ['--streams'], "websocket-push.mjs: Option '--streams <value>' argument missing"],
    ['run.mjs', ['--only', 'push,pushh'], 'run.mjs: --only "push,pushh": unknown pushh'],
    ['run.mjs', ['--only', 'push', '--rates', 'x'], 'run.mjs: --rates "x": not a comma-separated list of numbers'],
    // A list for push, one number for soak: each benchmark's own parser checks it before any starts.
    ['run.mjs', ['--only', 'push,soak', '--streams', '1,2'], 'soak.mjs: --streams "1,2": not a number'],
    ['device-scale.mjs', ['--transports', 'ws,wss'], 'device-scale.mjs: --transports "ws,wss": unknown wss (have ws, grpc, grpc-tls, ws-tls)'],
    ['device-scale.mjs', ['--devices', '5k'], 'device-scale.mjs: --devices "5k": not a comma-separated list of numbers'],
    ['protocol-encode.mjs', ['--json=yes'], "protocol-encode.mjs: Option '--json' does not take an argument"],
  ])('%s %j: a bad value exits 2 naming the flag', async (script, args, message) => {
    const { code, stderr } = await run(script, args);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
  });
});
