import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Descriptors an explicit `GATEWAY_MAX_CONNECTIONS` must leave below the open-file limit for
 * what is not a public connection: the admin listener and its scrapes, Redis (shared client,
 * blocking readers, Sentinel or cluster connections), downstream channels, the OTLP exporter,
 * files being read, stdio and the event loop's own. An idle gateway uses about 30.
 */
export const DESCRIPTOR_RESERVE = 64;
/** Share of the open-file soft limit the public listeners may hold by default. */
export const DEFAULT_CONNECTION_SHARE = 0.8;
/** Soft limit assumed where it cannot be read (the usual default on Linux and macOS). */
export const ASSUMED_OPEN_FILE_LIMIT = 1024;

/** The process's open-file soft limit (`RLIMIT_NOFILE`), and where it was read. */
export interface OpenFileLimit {
  /** `Infinity` when unlimited. */
  readonly soft: number;
  /** Where `soft` was read (`assumed`: neither worked; {@link ASSUMED_OPEN_FILE_LIMIT}). */
  readonly source: '/proc/self/limits' | 'ulimit -n' | 'assumed';
}

/** The soft limit on the `Max open files` line of `/proc/<pid>/limits`; undefined when absent. */
export function parseProcLimits(text: string): number | undefined {
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)\s+files\s*$/m.exec(text);
  if (match === null) return undefined;
  return match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
}

/** `ulimit -n` output (a number or `unlimited`); undefined when it is neither. */
export function parseUlimit(text: string): number | undefined {
  const value = text.trim();
  if (value === 'unlimited') return Number.POSITIVE_INFINITY;
  return /^\d+$/.test(value) ? Number(value) : undefined;
}

/**
 * Reads the open-file soft limit, which Node does not expose (no `getrlimit`): from
 * `/proc/self/limits` on Linux; elsewhere from `sh -c 'ulimit -n'` (a child inherits the
 * limit); where neither works (Windows), {@link ASSUMED_OPEN_FILE_LIMIT} is assumed.
 */
export function readOpenFileLimit(): OpenFileLimit {
  try {
    const soft = parseProcLimits(readFileSync('/proc/self/limits', 'utf8'));
    if (soft !== undefined) return { soft, source: '/proc/self/limits' };
  } catch {
    // Not Linux: try the shell.
  }
  try {
    const soft = parseUlimit(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] }));
    if (soft !== undefined) return { soft, source: 'ulimit -n' };
  } catch {
    // No shell.
  }
  return { soft: ASSUMED_OPEN_FILE_LIMIT, source: 'assumed' };
}

/** `GATEWAY_MAX_CONNECTIONS` does not fit the open-file limit; `message` names the variable. */
export class MaxConnectionsError extends Error {
  override readonly name = 'MaxConnectionsError';
  /** Always `max_connections_invalid`. */
  readonly code = 'max_connections_invalid';
}

/**
 * The connection cap of the public listeners: `configured` (`GATEWAY_MAX_CONNECTIONS`) when
 * set; else 80 % of the soft limit, rounded down. Either way at least
 * {@link DESCRIPTOR_RESERVE} descriptors stay below the soft limit (with a small limit the
 * default is the limit minus that reserve).
 *
 * @throws MaxConnectionsError naming the variable when `configured` or the limit leave no room.
 */
export function maxConnectionsFor(configured: number | undefined, limit: OpenFileLimit): number {
  if (limit.soft === Number.POSITIVE_INFINITY) return configured ?? Number.MAX_SAFE_INTEGER;
  const most = limit.soft - DESCRIPTOR_RESERVE;
  const raise = 'raise the limit (ulimit -n, systemd LimitNOFILE)';
  if (most < 1) {
    throw new MaxConnectionsError(
      `GATEWAY_MAX_CONNECTIONS: the process's open-file soft limit (${limit.soft}, from ${limit.source}) leaves no descriptor for connections once ${DESCRIPTOR_RESERVE} are kept for the admin listener, Redis, downstreams and files; ${raise}`,
    );
  }
  if (configured === undefined) return Math.min(Math.floor(limit.soft * DEFAULT_CONNECTION_SHARE), most);
  if (configured > most) {
    throw new MaxConnectionsError(
      `GATEWAY_MAX_CONNECTIONS: ${configured} leaves fewer than ${DESCRIPTOR_RESERVE} of the process's ${limit.soft} open files (soft limit, from ${limit.source}) ` +
        `for the admin listener, Redis, downstreams and files; set at most ${most} or ${raise}`,
    );
  }
  return configured;
}
