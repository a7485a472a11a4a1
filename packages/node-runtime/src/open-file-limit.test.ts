import { describe, expect, it } from 'vitest';
import { DESCRIPTOR_RESERVE, MaxConnectionsError, maxConnectionsFor, parseProcLimits, parseUlimit, readOpenFileLimit } from './open-file-limit.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max processes             63703                63703                processes
Max open files            4096                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('open-file limit', () => {
  it('reads the soft limit from /proc/<pid>/limits and ulimit -n', () => {
    expect(parseProcLimits(LIMITS)).toBe(4096);
    expect(parseProcLimits(LIMITS.replace('4096                 524288', 'unlimited            unlimited'))).toBe(Number.POSITIVE_INFINITY);
    expect(parseProcLimits('Max processes 1 1 processes\n')).toBeUndefined();
    expect([parseUlimit('1024\n'), parseUlimit('unlimited'), parseUlimit('')]).toEqual([1024, Number.POSITIVE_INFINITY, undefined]);
  });

  it('reads this process\'s limit where it runs (Linux: /proc/self/limits)', () => {
    const limit = readOpenFileLimit();
    expect(limit.source).toBe('/proc/self/limits');
    expect(limit.soft).toBeGreaterThan(0);
  });

  it('defaults to 80 % of the soft limit, rounded down, keeping the reserve below it', () => {
    const at = (soft: number) => maxConnectionsFor(undefined, { soft, source: '/proc/self/limits' });
    expect([at(65536), at(1024), at(1000), at(512)]).toEqual([52428, 819, 800, 409]);
    // 80 % of a small limit would leave less than the reserve.
    expect([at(256), at(128), at(65)]).toEqual([256 - DESCRIPTOR_RESERVE, 128 - DESCRIPTOR_RESERVE, 1]);
    expect(at(Number.POSITIVE_INFINITY)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('takes GATEWAY_MAX_CONNECTIONS up to the limit minus the reserve, and fails naming it beyond', () => {
    const limit = { soft: 1024, source: '/proc/self/limits' } as const;
    expect(maxConnectionsFor(960, limit)).toBe(960);
    expect(maxConnectionsFor(10, limit)).toBe(10);
    expect(() => maxConnectionsFor(961, limit)).toThrow(MaxConnectionsError);
    expect(() => maxConnectionsFor(961, limit)).toThrow(
      "GATEWAY_MAX_CONNECTIONS: 961 leaves fewer than 64 of the process's 1024 open files (soft limit, from /proc/self/limits) for the admin listener, Redis, downstreams and files; set at most 960 or raise the limit (ulimit -n, systemd LimitNOFILE)",
    );
    expect(() => maxConnectionsFor(undefined, { soft: 64, source: 'ulimit -n' })).toThrow(/^GATEWAY_MAX_CONNECTIONS: the process's open-file soft limit \(64, from ulimit -n\) leaves no descriptor/);
    expect(maxConnectionsFor(5_000_000, { soft: Number.POSITIVE_INFINITY, source: 'ulimit -n' })).toBe(5_000_000);
  });
});
