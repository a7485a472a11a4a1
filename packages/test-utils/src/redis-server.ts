import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

/** Options of {@link startRedisServer}. */
export interface RedisServerOptions {
  /** `--requirepass` value; a random one by default. */
  password?: string;
  /** `--appendonly yes` when true (default false: no persistence at all). */
  appendonly?: boolean;
  /** Milliseconds to wait for "Ready to accept connections" (default 10000). */
  startTimeoutMs?: number;
  /** More `redis-server` arguments (e.g. the cluster settings), appended as given. */
  extraArgs?: readonly string[];
}

/** A running `redis-server` child process owned by the test process. */
export interface RedisServerHandle {
  readonly host: string;
  readonly port: number;
  readonly password: string;
  /** `redis://:<password>@<host>:<port>`. */
  readonly url: string;
  /** Pid of the current process (changes after {@link RedisServerHandle.restart}). */
  readonly pid: number;
  /** The server's working directory (`--dir`), where `SHUTDOWN SAVE` writes dump.rdb. */
  readonly dir: string;
  /** Whether the current process is still running. */
  readonly running: boolean;
  /** SIGTERM (and SIGCONT if paused) and wait for the process to exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the process to exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets but answers nothing. */
  pause(): void;
  /** SIGCONT after {@link RedisServerHandle.pause}. */
  resume(): void;
  /**
   * Starts the server again on the same port, password and dir (stopping it first if it is
   * still running). Data survives only if it was saved (see {@link RedisServerHandle.shutdownSave}).
   */
  restart(): Promise<void>;
  /** `SHUTDOWN SAVE` over a raw connection and wait for exit, so {@link RedisServerHandle.restart} keeps the data. */
  shutdownSave(): Promise<void>;
}

const HOST = '127.0.0.1';
const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

function killAllSync(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  for (const dir of dirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  dirs.clear();
}

/** A temporary directory removed when the test process exits. @internal */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllSync();
      // Keep the default behaviour (terminate) when nobody else handles the signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.once(signal, onSignal);
  }
}

/** A spawned redis-server process. @internal */
export interface Spawned {
  child: ChildProcess;
  exited: Promise<void>;
}

/** @internal */
export class StartFailure extends Error {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
    this.name = 'StartFailure';
  }
}

function spawnRedis(
  port: number,
  password: string,
  dir: string,
  appendonly: boolean,
  startTimeoutMs: number,
  extraArgs: readonly string[],
): Promise<Spawned> {
  const args = [
    '--port', String(port),
    '--bind', HOST,
    '--requirepass', password,
    '--save', '',
    '--appendonly', appendonly ? 'yes' : 'no',
    '--dir', dir,
    '--dbfilename', 'dump.rdb',
    '--daemonize', 'no',
    '--logfile', '',
    '--loglevel', 'notice',
    ...extraArgs,
  ];
  return spawnRedisProcess(args, 'Ready to accept connections', port, startTimeoutMs);
}

/**
 * Spawns `redis-server <args>` and resolves once its output contains `readyText`. The child is
 * registered for the exit hook (killed when the test process exits).
 * @internal shared by the server and Sentinel harnesses.
 */
export function spawnRedisProcess(args: readonly string[], readyText: string, port: number, startTimeoutMs: number): Promise<Spawned> {
  installExitHook();
  return new Promise<Spawned>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn('redis-server', [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      reject(err);
      return;
    }
    let output = '';
    let settled = false;
    const exited = new Promise<void>((res) => {
      child.once('exit', () => {
        live.delete(child);
        res();
      });
    });
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new Error(`redis-server on port ${port} not ready after ${startTimeoutMs}ms:\n${output}`));
    }, startTimeoutMs);
    const onData = (chunk: Buffer): void => {
      // Keep only a tail for diagnostics; the pipe must be drained anyway.
      output = (output + chunk.toString('utf8')).slice(-8000);
      if (!settled && output.includes(readyText)) {
        settled = true;
        clearTimeout(timer);
        resolve({ child, exited });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        fail(
          new Error(
            'redis-server was not found on PATH: install it (apt-get install redis-server) to run these tests',
          ),
        );
      } else {
        fail(err);
      }
    });
    child.once('exit', (code, signal) => {
      if (settled) return;
      const portInUse = /address already in use/i.test(output);
      fail(
        new StartFailure(
          `redis-server on port ${port} exited before it was ready (code ${code}, signal ${signal}):\n${output}`,
          portInUse,
        ),
      );
    });
    live.add(child);
  });
}

/** Sends AUTH + SHUTDOWN SAVE over a raw RESP connection. */
function sendShutdownSave(port: number, password: string): Promise<void> {
  const arg = (s: string): string => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  const payload = `*2\r\n${arg('AUTH')}${arg(password)}*2\r\n${arg('SHUTDOWN')}${arg('SAVE')}`;
  return new Promise<void>((resolve, reject) => {
    const socket = connect(port, HOST);
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      reply += data;
      if (reply.includes('-ERR') || reply.includes('-WRONGPASS')) {
        socket.destroy();
        reject(new Error(`SHUTDOWN SAVE refused: ${reply.trim()}`));
      }
    });
    socket.once('connect', () => socket.write(payload));
    socket.once('error', reject);
    // The server closes the connection when it shuts down.
    socket.once('close', () => resolve());
  });
}

/**
 * Starts a password-protected `redis-server` (from PATH) on 127.0.0.1 and a free port with
 * no RDB persistence (`--save ''`) and its own temporary `--dir`; resolves once it accepts
 * connections. The process is killed when the test process exits.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServerHandle> {
  installExitHook();
  const password = options.password ?? randomBytes(12).toString('hex');
  const appendonly = options.appendonly ?? false;
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  const extraArgs = options.extraArgs ?? [];
  const dir = tempDir('edge-gateway-redis-');

  let port = 0;
  let current: Spawned | undefined;
  for (let attempt = 1; current === undefined; attempt++) {
    port = await freePort();
    try {
      current = await spawnRedis(port, password, dir, appendonly, startTimeoutMs, extraArgs);
    } catch (err) {
      // Another process may have taken the port between freePort() and bind.
      if (!(err instanceof StartFailure && err.portInUse) || attempt >= 5) throw err;
    }
  }
  let spawned: Spawned = current;
  const isRunning = (): boolean => spawned.child.exitCode === null && spawned.child.signalCode === null;

  const handle: RedisServerHandle = {
    host: HOST,
    port,
    password,
    url: `redis://:${encodeURIComponent(password)}@${HOST}:${port}`,
    get pid(): number {
      return spawned.child.pid ?? -1;
    },
    dir,
    get running(): boolean {
      return isRunning();
    },
    async stop(): Promise<void> {
      if (!isRunning()) return;
      spawned.child.kill('SIGTERM');
      spawned.child.kill('SIGCONT');
      await spawned.exited;
    },
    async kill(): Promise<void> {
      if (!isRunning()) return;
      spawned.child.kill('SIGKILL');
      await spawned.exited;
    },
    pause(): void {
      if (isRunning()) spawned.child.kill('SIGSTOP');
    },
    resume(): void {
      if (isRunning()) spawned.child.kill('SIGCONT');
    },
    async restart(): Promise<void> {
      await handle.stop();
      // The old listening socket is closed once the process exited; retry briefly anyway.
      for (let attempt = 1; ; attempt++) {
        try {
          spawned = await spawnRedis(port, password, dir, appendonly, startTimeoutMs, extraArgs);
          return;
        } catch (err) {
          if (!(err instanceof StartFailure && err.portInUse) || attempt >= 20) throw err;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
    async shutdownSave(): Promise<void> {
      if (!isRunning()) throw new Error('shutdownSave: redis-server is not running');
      spawned.child.kill('SIGCONT');
      await sendShutdownSave(port, password);
      await spawned.exited;
    },
  };
  return handle;
}
