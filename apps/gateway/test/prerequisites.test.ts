import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { REPO_ROOT } from '@edge-gateway/test-utils/gateway-process';

// "Two commands on a fresh Debian machine": one documented command installs every prerequisite,
// CI uses that same command, and the Node floor the README names is one every dependency accepts.
const readJson = (path: string): Record<string, unknown> => JSON.parse(readFileSync(join(REPO_ROOT, path), 'utf8')) as Record<string, unknown>;
const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const SCRIPT = 'scripts/install-prerequisites.sh';

interface LockEntry {
  readonly engines?: { readonly node?: string } | readonly string[];
  readonly dev?: boolean;
}

describe('prerequisites', () => {
  const root = readJson('package.json') as { engines: { node: string }; workspaces: string[] };
  const floor = semver.minVersion(root.engines.node)?.version ?? '';

  it('names one Node floor in the README and every workspace package', () => {
    expect(floor).toBe('20.19.0');
    expect(README).toContain(`Node \`${root.engines.node}\``);
    const lock = readJson('package-lock.json') as { packages: Record<string, LockEntry & { link?: boolean }> };
    const workspaces = Object.keys(lock.packages).filter((p) => p !== '' && !p.includes('node_modules/'));
    expect(workspaces.length).toBeGreaterThan(8);
    for (const path of workspaces) {
      const pkg = readJson(join(path, 'package.json')) as { engines?: { node?: string } };
      expect({ path, node: pkg.engines?.node }).toEqual({ path, node: root.engines.node });
    }
  });

  it('installs only dependencies that run on that floor', () => {
    const lock = readJson('package-lock.json') as { packages: Record<string, LockEntry> };
    const refusing = Object.entries(lock.packages)
      .filter(([path]) => path.includes('node_modules/'))
      .flatMap(([path, entry]) => {
        const range = Array.isArray(entry.engines) ? undefined : (entry.engines as { node?: string } | undefined)?.node;
        return range !== undefined && !semver.satisfies(floor, range) ? [`${path} (${range})`] : [];
      });
    expect(refusing).toEqual([]);
  });

  it('has one install command, documented in the README and run by CI before the test command', () => {
    expect(README).toContain(`sudo ${SCRIPT}`);
    const ci = readFileSync(join(REPO_ROOT, '.ci/run'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(ci.slice(-3)).toEqual([SCRIPT, 'npm ci', 'npm test']);
    execFileSync('bash', ['-n', join(REPO_ROOT, SCRIPT)]);
  });

  it('installs every external command the tests start', () => {
    const script = readFileSync(join(REPO_ROOT, SCRIPT), 'utf8');
    for (const command of ['redis-server', 'redis-cli', 'jq', 'systemd-analyze', '/usr/bin/chromium']) expect(script).toContain(command);
    // The script, run where everything is present, installs nothing and reports each version.
    const out = execFileSync(join(REPO_ROOT, SCRIPT), { encoding: 'utf8' });
    expect(out).not.toContain('installing');
    expect(out).toMatch(/^node v\d+/m);
    expect(out).toMatch(/^Redis server v=/m);
    expect(out).toMatch(/^jq-/m);
    expect(out).toMatch(/^Chromium /m);
  });
});
