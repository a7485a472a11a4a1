import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './gateway-process.js';

export const CLI = join(REPO_ROOT, 'apps/cli/dist/cli.js');
export const DEV = join(REPO_ROOT, 'apps/dev/dist/dev.js');
export const DEMO = join(REPO_ROOT, 'apps/dev/dist/demo.js');

/** Only PATH plus what the test passes: nothing of the developer's GATEWAY_* leaks in. */
function cleanEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** A built entry point run as a child process, its output split into lines (JSON lines parsed). */
export class LineProcess {
  readonly lines: string[] = [];
  stdout = '';
  stderr = '';
  private readonly child: ChildProcess;
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(script: string, args: readonly string[], env: Record<string, string | undefined>, cwd?: string) {
    if (!existsSync(script)) throw new Error(`${script} is missing: run "npm run build" first`);
    this.child = spawn(process.execPath, [script, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'], ...(cwd === undefined ? {} : { cwd }) });
    let buffer = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      buffer += chunk;
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        this.lines.push(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf('\n');
      }
      this.notify();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        resolve({ code, signal });
        this.notify();
      });
    });
    LineProcess.all.add(this);
  }

  static readonly all = new Set<LineProcess>();

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Stdout lines that are JSON objects (log lines). */
  get logs(): Array<Record<string, unknown>> {
    return this.lines.flatMap((line) => {
      try {
        const parsed = JSON.parse(line) as unknown;
        return typeof parsed === 'object' && parsed !== null ? [parsed as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
  }

  /** Resolves with the first stdout line matching; fails after `timeoutMs` or when the process exits first. */
  async waitForLine(test: (line: string) => boolean, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(test);
      if (found !== undefined) return found;
      if (!this.running) throw new Error(`process exited before the expected line; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for a line; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, remaining);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  /** Waits for a JSON log line with this `message`. */
  async waitForLog(message: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const line = await this.waitForLine((l) => l.includes(`"message":${JSON.stringify(message)}`), timeoutMs);
    return JSON.parse(line) as Record<string, unknown>;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async stop(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    LineProcess.all.delete(this);
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) {
      this.waiters.delete(waiter);
      waiter();
    }
  }
}

/** Runs a built entry to completion (killed after `timeoutMs`). */
export async function runScript(
  script: string,
  args: readonly string[],
  env: Record<string, string | undefined>,
  timeoutMs = 20_000,
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string; lines: string[] }> {
  const child = new LineProcess(script, args, env, cwd);
  const timer = setTimeout(() => child.signal('SIGKILL'), timeoutMs);
  try {
    const { code } = await child.exited;
    return { code, stdout: child.stdout, stderr: child.stderr, lines: child.lines };
  } finally {
    clearTimeout(timer);
    LineProcess.all.delete(child);
  }
}

/** Runs the `edge-gateway` CLI (in `cwd` when given). */
export function runCli(args: readonly string[], env: Record<string, string | undefined>, timeoutMs?: number, cwd?: string) {
  return runScript(CLI, args, env, timeoutMs, cwd);
}

process.once('exit', () => {
  for (const child of LineProcess.all) child.signal('SIGKILL');
});
