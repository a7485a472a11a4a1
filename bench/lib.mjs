// Shared helpers of the benchmark scripts: the built gateway as a child process, a real
// redis-server, devices and pre-signed requests, a raw (non-verifying) gRPC client, latency
// statistics, RSS sampling and result files. Plain ESM over the BUILT workspace packages
// (`npx tsc -b` first; `npm run bench` does it).
import { spawn, execFileSync } from 'node:child_process';
import { parseArgs as parseNodeArgs } from 'node:util';
import { generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import { createClient } from 'redis';
import { commandRequestBytes, subscribeRequestBytes } from '@edge-gateway/core';
import { ExecuteCommandRequest, SubscribeEventsRequest } from '@edge-gateway/adapters-grpc/generated';
import { startRedisServer } from '@edge-gateway/test-utils';
import { sessionRecordFields } from '@edge-gateway/protocol';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(BENCH_DIR, '..');
export const MAIN = join(REPO_ROOT, 'apps/gateway/dist/main.js');
export const RESULTS_DIR = join(BENCH_DIR, 'results');

// ---------------------------------------------------------------------------------------
// Command line

/**
 * Options every script that starts a gateway child accepts: `--gateway-env K=V,K2=V2` (also
 * BENCH_GATEWAY_ENV), extra variables for every gateway child (see {@link extraGatewayEnv}).
 */
export const GATEWAY_ENV_OPTION = { 'gateway-env': 'string' };

// `--gateway-env` of the last parse, read by extraGatewayEnv().
let parsedGatewayEnv;

/** The usage line of an option spec (see parseOptions). */
export function usageOf(script, spec, positionals = '') {
  const parts = Object.entries(spec).map(([name, kind]) => {
    if (kind === 'boolean') return `[--${name}]`;
    if (Array.isArray(kind)) return `[--${name} ${kind.join('|')}]`;
    if (typeof kind === 'object') return `[--${name} ${kind.list.join(',')}]`;
    return `[--${name} <${kind === 'numbers' ? 'n,n,...' : kind === 'number' ? 'n' : 'value'}>]`;
  });
  return `usage: node bench/${script}${positionals ? ` ${positionals}` : ''} ${parts.join(' ')}`;
}

/** Prints the usage line and what is wrong with the command line, and exits 2. */
export function usageError(script, spec, message, positionals, usage = usageOf(script, spec, positionals)) {
  console.error(`${usage}\n${script}: ${message}`);
  process.exit(2);
}

/**
 * Parses the command line strictly (node:util parseArgs, `strict: true`): `spec` maps each
 * option name to its kind, `'boolean'`, `'string'`, `'number'`, `'numbers'` (a comma list of
 * numbers), an array of allowed values, or `{ list: [...] }` (a comma list of those). An
 * unknown option, a missing value or a value of the wrong kind prints the usage line naming the
 * option and exits 2, before anything runs (a mistyped flag used to be ignored and the run
 * silently took its defaults). `--quick` (where declared) is also set by BENCH_QUICK=1.
 * Returns the values by option name (strings as given; `num` converts), positionals in `_`.
 * `usage` replaces the generated usage line.
 */
export function parseOptions(script, spec, argv = process.argv.slice(2), { positionals = '', usage } = {}) {
  const options = Object.fromEntries(Object.entries(spec).map(([name, kind]) => [name, { type: kind === 'boolean' ? 'boolean' : 'string' }]));
  let parsed;
  try {
    parsed = parseNodeArgs({ args: argv, options, strict: true, allowPositionals: positionals !== '' });
  } catch (error) {
    usageError(script, spec, error.message, positionals, usage);
  }
  const args = { ...parsed.values };
  for (const [name, value] of Object.entries(args)) {
    const kind = spec[name];
    const bad = (what) => usageError(script, spec, `--${name} ${JSON.stringify(value)}: ${what}`, positionals, usage);
    const isNumber = (v) => v.trim() !== '' && Number.isFinite(Number(v));
    if (kind === 'number' && !isNumber(value)) bad('not a number');
    if (kind === 'numbers' && !value.split(',').every(isNumber)) bad('not a comma-separated list of numbers');
    if (Array.isArray(kind) && !kind.includes(value)) bad(`not one of ${kind.join(', ')}`);
    if (typeof kind === 'object' && !Array.isArray(kind)) {
      const unknown = value.split(',').filter((v) => !kind.list.includes(v));
      if (unknown.length > 0) bad(`unknown ${unknown.join(', ')} (have ${kind.list.join(', ')})`);
    }
  }
  if ('quick' in spec) args.quick = args.quick === true || process.env.BENCH_QUICK === '1';
  if ('gateway-env' in spec) parsedGatewayEnv = args['gateway-env'];
  args._ = parsed.positionals;
  return args;
}

/**
 * Command-line options of the options in `spec` that `args` holds, for passing them on to
 * another script's parser (bench/run.mjs passes each benchmark only the options it declares).
 */
export function argvFor(spec, args) {
  const argv = [];
  for (const name of Object.keys(spec)) {
    const value = args[name];
    if (value === true) argv.push(`--${name}`);
    else if (typeof value === 'string') argv.push(`--${name}=${value}`);
  }
  return argv;
}

export function num(args, name, fallback) {
  const v = args[name];
  if (v === undefined || v === true) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${v}`);
  return n;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Machine noise

/** Other CPU consumers right now: load average and running test runners (other sessions share this machine). */
export function machineSnapshot() {
  let vitest = 0;
  let busy = [];
  try {
    const out = execFileSync('ps', ['-eo', 'pid,pcpu,args', '--no-headers'], { encoding: 'utf8' });
    for (const line of out.split('\n')) {
      if (line.includes('vitest') && !line.includes('grep')) vitest += 1;
      const m = /^\s*(\d+)\s+([\d.]+)\s+(.*)$/.exec(line);
      if (m && Number(m[2]) >= 20 && Number(m[1]) !== process.pid) busy.push({ pid: Number(m[1]), pcpu: Number(m[2]), cmd: m[3].slice(0, 80) });
    }
  } catch {
    // ps missing: leave the counts empty
  }
  return { at: new Date().toISOString(), loadavg1: loadavg()[0], vitestProcesses: vitest, busyProcesses: busy };
}

export function machineInfo() {
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', totalMemMiB: Math.round(totalmem() / 1048576), node: process.version, platform: process.platform };
}

/**
 * Writes `bench/results/<name>.json` (or `<name>-<BENCH_TAG>.json` when the BENCH_TAG env is
 * set, e.g. `before` for figures taken before an optimisation) and returns the path.
 */
export function writeResult(name, data) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const tag = process.env.BENCH_TAG;
  const path = join(RESULTS_DIR, `${tag ? `${name}-${tag}` : name}.json`);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}

export function readResult(name) {
  const path = join(RESULTS_DIR, `${name}.json`);
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
}

// ---------------------------------------------------------------------------------------
// Statistics

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Summary of a Float64Array/array of latencies in ms. */
export function summarize(values, count = values.length) {
  const sorted = Float64Array.from(values.subarray ? values.subarray(0, count) : values.slice(0, count)).sort();
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return {
    count: sorted.length,
    p50: r3(percentile(sorted, 50)),
    p90: r3(percentile(sorted, 90)),
    p99: r3(percentile(sorted, 99)),
    max: r3(sorted[sorted.length - 1] ?? NaN),
  };
}

/** Integer-millisecond histogram (cheap to record at high rates). */
export class MsHistogram {
  constructor(maxMs = 120_000) {
    this.counts = new Uint32Array(maxMs + 1);
    this.n = 0;
  }
  record(ms) {
    const i = ms < 0 ? 0 : ms > this.counts.length - 1 ? this.counts.length - 1 : ms | 0;
    this.counts[i] += 1;
    this.n += 1;
  }
  quantile(q) {
    if (this.n === 0) return NaN;
    const target = Math.ceil(q * this.n);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i += 1) {
      seen += this.counts[i];
      if (seen >= target) return i;
    }
    return this.counts.length - 1;
  }
  summary() {
    return { count: this.n, p50: this.quantile(0.5), p90: this.quantile(0.9), p99: this.quantile(0.99), max: this.quantile(1) };
  }
}

// ---------------------------------------------------------------------------------------
// Processes

/** Resident set size of a process in KiB (from /proc/<pid>/status VmRSS). */
export function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) : NaN;
}

/** CPU seconds (user+system) a process used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function writeSignerKey() {
  const dir = mkdtempSync(join(tmpdir(), 'eg-bench-key-'));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const path = join(dir, 'signer.pem');
  writeFileSync(path, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { path, publicKeyRaw: der.subarray(der.length - 32) };
}

const children = new Set();
process.once('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

/**
 * The built gateway binary (`apps/gateway/dist/main.js`) as a child process. Log lines are
 * parsed only for the messages waited on (cheap at tens of thousands of lines per second);
 * the last 64 KiB of output are kept for diagnostics.
 */
export class GatewayChild {
  /** `main`: another build of the binary (e.g. a copy of the tree before an optimisation). */
  constructor(env, { nodeArgs = [], main = MAIN } = {}) {
    if (!existsSync(main)) throw new Error(`${main} is missing: run "npx tsc -b" first`);
    const cleanEnv = { PATH: process.env.PATH ?? '' };
    for (const [k, v] of Object.entries(env)) if (v !== undefined) cleanEnv[k] = String(v);
    const extra = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
    this.spawnedAt = performance.now();
    this.child = spawn(process.execPath, [...nodeArgs, ...extra, main], { env: cleanEnv, stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
    children.add(this.child);
    this.tail = '';
    this.lines = 0;
    this.watch = new Map(); // message -> {resolve, at}
    this.seen = new Map(); // message -> {line, at}
    this.addresses = {};
    let buffer = '';
    this.child.stdout.setEncoding('utf8').on('data', (chunk) => {
      const at = performance.now();
      this.tail = (this.tail + chunk).slice(-65536);
      // Every line is parsed until `gateway started`; later only while someone waits for a line.
      if (this.watch.size === 0 && this.seen.has('gateway started')) return;
      buffer += chunk;
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        this.lines += 1;
        const startup = !this.seen.has('gateway started');
        let message;
        if (startup) {
          try {
            const parsed = JSON.parse(line);
            message = parsed.message;
            if (!this.seen.has(message)) this.seen.set(message, { line: parsed, at });
          } catch {
            // not JSON
          }
        }
        for (const [wanted, waiter] of this.watch) {
          if (message === wanted || (!startup && line.includes(`"message":"${wanted}"`))) {
            let parsed;
            try {
              parsed = JSON.parse(line);
            } catch {
              parsed = { message: wanted };
            }
            if (!this.seen.has(wanted)) this.seen.set(wanted, { line: parsed, at });
            this.watch.delete(wanted);
            waiter(parsed, at);
          }
        }
        nl = buffer.indexOf('\n');
      }
      if (this.watch.size === 0 && this.seen.has('gateway started')) buffer = '';
    });
    this.child.stderr.setEncoding('utf8').on('data', (chunk) => {
      this.tail = (this.tail + chunk).slice(-65536);
    });
    this.exited = new Promise((r) =>
      this.child.once('exit', (code, signal) => {
        children.delete(this.child);
        r({ code, signal, at: performance.now() });
      }),
    );
  }

  get pid() {
    return this.child.pid;
  }

  /** Resolves `{ line, at }` (at = performance.now() when the line arrived). */
  waitFor(message, timeoutMs = 20_000) {
    const seen = this.seen.get(message);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolveLine, reject) => {
      const timer = setTimeout(() => {
        this.watch.delete(message);
        reject(new Error(`gateway: timed out waiting for "${message}"; output tail:\n${this.tail.slice(-4000)}`));
      }, timeoutMs);
      this.watch.set(message, (line, at) => {
        clearTimeout(timer);
        resolveLine({ line, at });
      });
      void this.exited.then(() => {
        if (this.watch.has(message)) {
          clearTimeout(timer);
          this.watch.delete(message);
          reject(new Error(`gateway exited before "${message}"; output tail:\n${this.tail.slice(-4000)}`));
        }
      });
    });
  }

  /** Waits for `gateway started`; returns the loopback addresses of the listeners. */
  async started(timeoutMs = 20_000) {
    const grpc = this.waitFor('authenticated grpc listener started', timeoutMs);
    const pub = this.waitFor('public http listener started', timeoutMs);
    const started = await this.waitFor('gateway started', timeoutMs);
    const local = (a) => `127.0.0.1:${String(a).slice(String(a).lastIndexOf(':') + 1)}`;
    this.addresses = {
      grpc: local((await grpc).line.address),
      publicHttp: local((await pub).line.address),
      adminHttp: this.seen.has('admin http listener started') ? local(this.seen.get('admin http listener started').line.address) : undefined,
      websocket: this.seen.has('websocket listener started') ? local(this.seen.get('websocket listener started').line.address) : undefined,
      startedAt: started.at,
    };
    return this.addresses;
  }

  signal(sig) {
    this.child.kill(sig);
  }

  /**
   * SIGTERM (so `--cpu-prof` profiles get written), SIGKILL after 5 s (60 s when profiling: the
   * drain takes up to GATEWAY_SHUTDOWN_TIMEOUT, then a long profile takes seconds to write).
   */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const profiling = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').includes('--cpu-prof');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), profiling ? 60_000 : 5000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/**
 * `--gateway-env K=V,K2=V2` (as parsed by the script's parseOptions; or BENCH_GATEWAY_ENV):
 * extra variables for every gateway child.
 */
export function extraGatewayEnv() {
  const value = parsedGatewayEnv ?? process.env.BENCH_GATEWAY_ENV;
  if (typeof value !== 'string' || value === '') return {};
  return Object.fromEntries(value.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

/** Environment for a gateway on loopback with a fresh signer key. */
export function gatewayEnv(redis, signer, extra = {}) {
  return {
    GATEWAY_REDIS_MASTER_ADDR: `127.0.0.1:${redis.port}`,
    GATEWAY_REDIS_PASSWORD: redis.password,
    GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: signer.path,
    GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    ...extraGatewayEnv(),
    ...extra,
  };
}

/**
 * A node script from bench/ as a child process that prints `{"port":N}` on its first line.
 * BENCH_HELPER_NODE_ARGS adds node options (e.g. `--cpu-prof`), as BENCH_GATEWAY_NODE_ARGS
 * does for the gateway.
 */
export async function startHelper(script, args = [], env = {}) {
  const extra = (process.env.BENCH_HELPER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...extra, join(BENCH_DIR, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  children.add(child);
  const port = await new Promise((resolvePort, reject) => {
    let buffer = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl >= 0) resolvePort(JSON.parse(buffer.slice(0, nl)).port);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before printing its port`)));
  });
  return {
    port,
    pid: child.pid,
    spawnedAt,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM first, so a helper run with --cpu-prof writes its profile on exit.
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(timer);
      }
      children.delete(child);
    },
  };
}

// ---------------------------------------------------------------------------------------
// Redis, devices, sessions, signing

export { startRedisServer };

/**
 * Starts a gateway child (this build, or `main`), connects `channels` raw clients to it (or to
 * `address` when the gateway's listener line is not logged), runs `fn(clients, gateway)`, then
 * closes the clients and stops the gateway.
 */
export async function withGatewayClients(env, { main, channels, address } = {}, fn) {
  const gateway = new GatewayChild(env, { main });
  try {
    const clients = await rawClients(address ?? (await gateway.started()).grpc, channels);
    try {
      return await fn(clients, gateway);
    } finally {
      for (const c of clients) c.close();
    }
  } finally {
    await gateway.stop();
  }
}

/**
 * What both command benchmarks run against: a redis-server with `deviceCount` active session
 * records, the echo downstream, the two baselines in front of it (the bare grpc-js proxy and
 * the intrinsic-work proxy, which signs with the gateway's signer key), and that key.
 * `stop()` tears all of it down.
 */
export async function startCommandRig({ deviceCount = 16, label = 'cmd', replica: withReplica = false } = {}) {
  const redis = await startRedisServer();
  // `replica`: a replica of it on loopback (`--replicaof`), linked before the rig is returned,
  // for the replicated-reservation variants (GATEWAY_REDIS_REPLICA_ADDRS, ..._REPLAY_MIN_REPLICAS).
  const replica = withReplica
    ? await startRedisServer({ password: redis.password, extraArgs: ['--masterauth', redis.password, '--replicaof', '127.0.0.1', String(redis.port)] })
    : undefined;
  const raw = await connectRedis(redis);
  if (replica !== undefined) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      await raw.set('bench:replica-probe', '1');
      if (Number(await raw.sendCommand(['WAIT', '1', '200'])) >= 1) break;
      if (Date.now() > deadline) throw new Error('the bench replica never acknowledged a write');
    }
  }
  const echo = await startHelper('echo-server.mjs');
  const proxy = await startHelper('bare-proxy.mjs', [`127.0.0.1:${echo.port}`]);
  const signer = writeSignerKey();
  const intrinsic = await startHelper('intrinsic-proxy.mjs', [`127.0.0.1:${echo.port}`, String(redis.port), redis.password, signer.path]);
  const devices = makeDevices(deviceCount, { label });
  await Promise.all(
    devices.map((d) =>
      raw.hSet(`gateway:session:${d.deviceSessionId}`, { device_session_id: d.deviceSessionId, user_id: d.userId, status: 'active', client_public_key: d.publicKeyBase64 }),
    ),
  );
  return {
    redis,
    replica,
    raw,
    echo,
    proxy,
    intrinsic,
    signer,
    devices,
    /** Gateway env routing `bench.*` to the echo downstream. */
    gatewayEnv: (extra = {}) => gatewayEnv(redis, signer, { GATEWAY_DOWNSTREAM_ROUTES: `bench.=127.0.0.1:${echo.port}`, ...extra }),
    async stop() {
      await raw.quit().catch(() => undefined);
      await proxy.stop();
      await intrinsic.stop();
      await echo.stop();
      await replica?.stop();
      await redis.stop();
    },
  };
}

/**
 * `--replicated`: the gateway variants of the replicated-reservation cost (issue 21), both on the
 * rig's master with its replica listed (GATEWAY_REDIS_REPLICA_ADDRS, so the client-events reader
 * is on the replica in both): `gateway` waits for one replica per reservation (the default with
 * replicas), `gateway-unreplicated` sets GATEWAY_REDIS_REPLAY_MIN_REPLICAS=0.
 */
export function replicatedVariants(rig) {
  const replicaAddrs = `127.0.0.1:${rig.replica.port}`;
  return [
    { label: 'gateway', env: { GATEWAY_REDIS_REPLICA_ADDRS: replicaAddrs, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '1' } },
    { label: 'gateway-unreplicated', env: { GATEWAY_REDIS_REPLICA_ADDRS: replicaAddrs, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '0' } },
  ];
}

export async function connectRedis(server) {
  // No node-redis command timeout (5 s by default): on a loaded machine a publisher's queued
  // XADDs outlived it and the rejection crashed the benchmark.
  const client = createClient({ socket: { host: '127.0.0.1', port: server.port, reconnectStrategy: false }, password: server.password, commandOptions: { timeout: 0 } });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

let deviceCounter = 0;
/** `count` devices; `perUser` consecutive devices share a user id. */
export function makeDevices(count, { perUser = 1, label = 'd' } = {}) {
  const devices = [];
  for (let i = 0; i < count; i += 1) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const der = publicKey.export({ format: 'der', type: 'spki' });
    deviceCounter += 1;
    devices.push({
      deviceSessionId: `${label}-${process.pid}-${deviceCounter}`,
      userId: `u-${label}-${process.pid}-${Math.floor(i / perUser)}`,
      privateKey,
      publicKeyBase64: der.subarray(der.length - 32).toString('base64'),
    });
  }
  return devices;
}

function sessionFields(device, status) {
  return sessionRecordFields({
    ...device,
    status,
    clientPublicKey: Buffer.from(device.publicKeyBase64, 'base64'),
    ...(status === 'revoked' ? { revokedAtMs: Date.now() } : {}),
  });
}

/** Writes the session records (the auth service's job), pipelined in batches. */
export async function writeSessions(redis, devices, { prefix = 'gateway:' } = {}) {
  for (let i = 0; i < devices.length; i += 1000) {
    await Promise.all(devices.slice(i, i + 1000).map((d) => redis.hSet(`${prefix}session:${d.deviceSessionId}`, sessionFields(d, 'active'))));
  }
}

/** Writes a revoked record then XADDs the snapshot (SPEC §5.1 order); resolves the entry id. */
export async function revokeSession(redis, device, { prefix = 'gateway:', stream = 'gateway:session-events' } = {}) {
  const fields = sessionFields(device, 'revoked');
  await redis.hSet(`${prefix}session:${device.deviceSessionId}`, fields);
  return redis.xAdd(stream, '*', fields);
}

let requestCounter = 0;
export function requestId(prefix = 'r') {
  requestCounter += 1;
  return `${prefix}-${process.pid}-${requestCounter}`;
}

/** An encoded, signed ExecuteCommandRequest (wire bytes). */
export function signedCommand(device, messageType, payload, timestampMs = Date.now()) {
  return signedCommandWithId(device, messageType, payload, timestampMs).bytes;
}

/** {@link signedCommand} and the request id it carries: `{ bytes, requestId }`. */
export function signedCommandWithId(device, messageType, payload, timestampMs = Date.now()) {
  const fields = { deviceSessionId: device.deviceSessionId, messageType, requestId: requestId('c'), timestampMs, payload };
  const signature = sign(null, commandRequestBytes(fields), device.privateKey);
  return { bytes: Buffer.from(ExecuteCommandRequest.encode({ ...fields, signature }).finish()), requestId: fields.requestId };
}

/** An encoded, signed SubscribeEventsRequest (wire bytes), resuming after `resumeAfterEventId` when given. */
export function signedSubscribe(device, timestampMs = Date.now(), resumeAfterEventId = '') {
  const fields = { deviceSessionId: device.deviceSessionId, requestId: requestId('s'), timestampMs, resumeAfterEventId };
  const signature = sign(null, subscribeRequestBytes(fields), device.privateKey);
  return Buffer.from(SubscribeEventsRequest.encode({ ...fields, signature }).finish());
}

// ---------------------------------------------------------------------------------------
// Raw gRPC client: pre-encoded requests, undecoded responses, no signature verification

const identity = (b) => b;
const RAW_SERVICE = {
  executeCommand: {
    path: '/edgegateway.v1.EdgeGateway/ExecuteCommand',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  subscribeEvents: {
    path: '/edgegateway.v1.EdgeGateway/SubscribeEvents',
    requestStream: false,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
export const RawEdgeGatewayClient = makeGenericClientConstructor(RAW_SERVICE, 'EdgeGateway');

/** `count` clients, each on its own HTTP/2 connection (local subchannel pool). */
export async function rawClients(address, count) {
  const clients = [];
  for (let i = 0; i < count; i += 1) {
    clients.push(
      new RawEdgeGatewayClient(address, credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
        'grpc.max_receive_message_length': 4 * 1024 * 1024,
      }),
    );
  }
  await Promise.all(clients.map((c) => new Promise((r, j) => c.waitForReady(Date.now() + 10_000, (e) => (e ? j(e) : r())))));
  return clients;
}

/**
 * The `event_id` of an encoded GatewayEvent without decoding the rest: field 1 (tag 0x0a)
 * comes first when set; an empty id (bootstrap / gateway events) is omitted by proto3.
 * Returns '' for those.
 */
export function eventIdOf(buf) {
  if (buf.length < 2 || buf[0] !== 0x0a) return '';
  let len = 0;
  let shift = 0;
  let i = 1;
  for (;;) {
    const b = buf[i++];
    len |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  return buf.toString('latin1', i, i + len);
}

/** Millisecond part of a stream id `<ms>-<seq>`. */
export function idMs(id) {
  return Number(id.slice(0, id.indexOf('-')));
}

/**
 * Opens one SubscribeEvents stream per request, round-robin over `clients`. `onEvent(buf,
 * index)` gets every live event; resolves when every stream received its bootstrap event
 * (or rejects after `timeoutMs`).
 */
export function openStreams(clients, requests, { onEvent = () => {}, onEnd = () => {}, timeoutMs = 120_000 } = {}) {
  const calls = new Array(requests.length);
  let bootstrapped = 0;
  let failed = 0;
  const t0 = performance.now();
  let firstError;
  const ready = new Promise((resolveAll, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${bootstrapped}/${requests.length} streams bootstrapped (${failed} failed${firstError ? `: ${firstError}` : ''}) after ${timeoutMs} ms`)), timeoutMs);
    for (let i = 0; i < requests.length; i += 1) {
      const call = clients[i % clients.length].subscribeEvents(requests[i]);
      calls[i] = call;
      let boot = false;
      let over = false;
      call.on('data', (buf) => {
        if (!boot) {
          boot = true;
          bootstrapped += 1;
          if (bootstrapped === requests.length) {
            clearTimeout(timer);
            resolveAll(performance.now() - t0);
          }
          return;
        }
        onEvent(buf, i);
      });
      call.on('error', () => undefined);
      // 'status' fires exactly once per call, with the final status (OK = 0 for a clean end).
      call.on('status', (st) => {
        if (over) return;
        over = true;
        const error = st.code === 0 ? undefined : st;
        if (error && !boot) {
          failed += 1;
          firstError ??= `${st.code} ${st.details}`;
        }
        onEnd(i, error);
      });
    }
  });
  return { calls, ready, get bootstrapped() { return bootstrapped; } };
}

/** Closes raw clients (cancels their calls first). */
export function closeAll(calls, clients) {
  for (const call of calls ?? []) {
    try {
      call?.cancel();
    } catch {
      // already over
    }
  }
  for (const client of clients ?? []) client.close();
}

/** GET an HTTP path; resolves the status code (or 0 on connection error). */
export async function httpStatus(url) {
  try {
    const res = await fetch(url);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** Runs `fn`, prints a heading and times it. */
export async function step(label, fn) {
  const t0 = performance.now();
  process.stdout.write(`  ${label} … `);
  const out = await fn();
  process.stdout.write(`${Math.round(performance.now() - t0)} ms\n`);
  return out;
}

export function fmt(n, digits = 0) {
  if (!Number.isFinite(n)) return String(n);
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
