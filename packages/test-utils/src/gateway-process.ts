import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** The `component stopped` lines of a clean shutdown, in the runbook's order. */
export const SHUTDOWN_ORDER = ['readiness', 'stream subscribers', 'push hub', 'grpc server', 'http listeners', 'downstreams', 'redis', 'telemetry'];

export const MAIN = join(REPO_ROOT, 'apps/gateway/dist/main.js');

export interface LogLine {
  readonly level: string;
  readonly message: string;
  readonly timestamp: string;
  readonly component?: string;
  readonly [field: string]: unknown;
}

/** Writes a fresh Ed25519 PKCS#8 signer key and returns its path and public key. */
export function writeSignerKey(dir = mkdtempSync(join(tmpdir(), 'eg-key-'))): { path: string; publicKeyRaw: Buffer; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const path = join(dir, 'signer.pem');
  writeFileSync(path, pem, { mode: 0o600 });
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { path, publicKeyRaw: der.subarray(der.length - 32), pem };
}

/** The built gateway binary as a child process, with its JSON log lines parsed. */
export class GatewayProcess {
  readonly logs: LogLine[] = [];
  /** Every byte the process wrote, for secret scans. */
  raw = '';
  private readonly child: ChildProcess;
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  /** `openFileLimit`: runs the binary under `ulimit -n <openFileLimit>` (soft and hard). */
  constructor(env: Record<string, string | undefined>, options: { readonly openFileLimit?: number } = {}) {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" first`);
    const cleanEnv: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
    for (const [k, v] of Object.entries(env)) if (v !== undefined) cleanEnv[k] = v;
    const stdio: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
    this.child =
      options.openFileLimit === undefined
        ? spawn(process.execPath, [MAIN], { env: cleanEnv, stdio })
        : // exec: the pid is the gateway's own.
          spawn('sh', ['-c', `ulimit -n ${options.openFileLimit} && exec "$0" "$1"`, process.execPath, MAIN], { env: cleanEnv, stdio });
    let buffer = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.raw += chunk;
      buffer += chunk;
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim() !== '') {
          try {
            this.logs.push(JSON.parse(line) as LogLine);
          } catch {
            this.logs.push({ level: 'raw', message: line, timestamp: '' });
          }
        }
        newline = buffer.indexOf('\n');
      }
      this.notify();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.raw += chunk;
      this.notify();
    });
    this.exited = new Promise((resolveExit) => {
      this.child.once('exit', (code, signal) => {
        resolveExit({ code, signal });
        this.notify();
      });
    });
    GatewayProcess.all.add(this);
  }

  static readonly all = new Set<GatewayProcess>();

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Resolves with the first log line matching, failing after `timeoutMs` with the logs so far. */
  async waitForLog(match: string | ((line: LogLine) => boolean), timeoutMs = 15_000): Promise<LogLine> {
    const test = typeof match === 'string' ? (l: LogLine) => l.message === match : match;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(test);
      if (found !== undefined) return found;
      if (!this.running && this.child.stdout?.readableEnded !== false) {
        throw new Error(`gateway exited before the expected log line; logs:\n${this.raw}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for a log line; logs:\n${this.raw}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(done, remaining);
        function done() {
          clearTimeout(timer);
          r();
        }
        this.waiters.add(done);
      });
    }
  }

  /** Waits for `gateway started` and returns the bound addresses from the listener logs. */
  async started(timeoutMs = 20_000): Promise<{ publicHttp: string; grpc: string; adminHttp: string | undefined; websocket?: string | undefined }> {
    await this.waitForLog('gateway started', timeoutMs);
    const address = (message: string) => this.logs.find((l) => l.message === message)?.['address'] as string | undefined;
    return {
      publicHttp: localize(address('public http listener started') ?? ''),
      grpc: localize(address('authenticated grpc listener started') ?? ''),
      adminHttp: address('admin http listener started') === undefined ? undefined : localize(address('admin http listener started') ?? ''),
      websocket: address('websocket listener started') === undefined ? undefined : localize(address('websocket listener started') ?? ''),
    };
  }

  async stop(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    GatewayProcess.all.delete(this);
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) {
      this.waiters.delete(waiter);
      waiter();
    }
  }
}

/** `0.0.0.0:1234` / `[::]:1234` → `127.0.0.1:1234`, so tests connect over loopback. */
export function localize(address: string): string {
  const port = address.slice(address.lastIndexOf(':') + 1);
  return `127.0.0.1:${port}`;
}

process.once('exit', () => {
  for (const gateway of GatewayProcess.all) gateway.signal('SIGKILL');
});

/** The environment of a gateway on loopback port 0 against `redis`, plus `extra` (undefined drops a variable). */
export function gatewayEnv(
  redis: { readonly port: number; readonly password: string },
  signerPath: string,
  extra: Record<string, string | undefined> = {},
): Record<string, string> {
  const env: Record<string, string | undefined> = {
    GATEWAY_REDIS_MASTER_ADDR: `127.0.0.1:${redis.port}`,
    GATEWAY_REDIS_PASSWORD: redis.password,
    GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: signerPath,
    GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
    ...extra,
  };
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) out[name] = value;
  return out;
}

/** One sample of a Prometheus text exposition: the value of `name{labels}` (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match === null || match[1] !== name) continue;
    const labelText = match[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) total += Number(match[3]);
  }
  return total;
}

/** Scrapes admin `/metrics` and returns the value of one series (summed over unnamed labels). */
export async function scrape(adminAddress: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const response = await fetch(`http://${adminAddress}/metrics`);
  return metricValue(await response.text(), name, labels);
}
