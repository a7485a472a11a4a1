import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Every package another team installs is publishable as it stands: `npm pack` ships what its
// `exports` name, its built code imports only what it declares, our packages depend on each
// other by semver range, and the adapters take core as a peer (one copy of core in an app).
interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  exports?: unknown;
  files?: string[];
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
}

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const packagesDir = join(REPO_ROOT, 'packages');
const manifests = readdirSync(packagesDir)
  .map((dir) => ({ dir: join(packagesDir, dir), manifest: JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8')) as Manifest }))
  .filter(({ manifest }) => manifest.private !== true);
const ours = new Set(readdirSync(packagesDir).map((dir) => (JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8')) as Manifest).name));

const exportTargets = (exports: unknown): { condition: string; target: string }[] =>
  typeof exports === 'string'
    ? [{ condition: 'default', target: exports }]
    : Object.entries((exports ?? {}) as Record<string, unknown>).flatMap(([key, value]) =>
        typeof value === 'string' ? [{ condition: key, target: value }] : exportTargets(value),
      );

const packed = new Map<string, string[]>();
function packedFiles(name: string): string[] {
  const known = packed.get(name);
  if (known !== undefined) return known;
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--workspace', name], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const [report] = JSON.parse(out) as { files: { path: string }[] }[];
  const files = (report?.files ?? []).map((f) => f.path);
  packed.set(name, files);
  return files;
}

/** Bare module specifiers a built file loads (static and dynamic imports, `require` through createRequire). */
function bareImports(source: string): string[] {
  const found = [
    ...source.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g),
    ...source.matchAll(/(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g),
    ...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
    ...source.matchAll(/\)\(\s*['"](@?[a-z][^'"]*)['"]\s*\)/g),
  ].map((m) => m[1] as string);
  return found.filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s));
}
const packageOf = (specifier: string): string => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

describe('published packages', () => {
  it('are the ones another team installs', () => {
    expect(manifests.map((m) => m.manifest.name).sort()).toEqual([
      '@edge-gateway/adapters-grpc',
      '@edge-gateway/adapters-http',
      '@edge-gateway/adapters-redis',
      '@edge-gateway/adapters-ws',
      '@edge-gateway/client',
      '@edge-gateway/client-web',
      '@edge-gateway/core',
      '@edge-gateway/node-runtime',
      '@edge-gateway/protocol',
      '@edge-gateway/publisher',
    ]);
  });

  describe.each(manifests)('$manifest.name', ({ dir, manifest }) => {
    it('packs every file its exports name, its README, CHANGELOG and LICENSE, and no tests', () => {
      const files = packedFiles(manifest.name);
      for (const required of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) expect(files).toContain(required);
      const targets = exportTargets(manifest.exports);
      expect(targets.length).toBeGreaterThan(0);
      // `source` is a condition other tools may set; ours is namespaced so it never leaks.
      expect(targets.filter((t) => t.condition === 'source')).toEqual([]);
      for (const { target } of targets) expect(files).toContain(target.replace(/^\.\//, ''));
      expect(files.filter((f) => /\.test\.|\.tsbuildinfo$|(^|\/)test\//.test(f))).toEqual([]);
      // Sources ship for the declaration maps; every entry point is an explicit list (no `export *`).
      for (const { condition, target } of targets.filter((t) => t.condition === '@edge-gateway/source')) {
        expect(readFileSync(join(dir, target), 'utf8'), `${condition} ${target}`).not.toMatch(/export \* from/);
      }
    });

    it('loads only what it declares, and depends on our packages by range (adapters take core as a peer)', () => {
      const declared = { ...manifest.dependencies, ...manifest.peerDependencies };
      const files = packedFiles(manifest.name).filter((f) => f.endsWith('.js'));
      const undeclared = new Set<string>();
      for (const file of files) {
        for (const specifier of bareImports(readFileSync(join(dir, file), 'utf8'))) {
          const pkg = packageOf(specifier);
          if (pkg !== manifest.name && declared[pkg] === undefined) undeclared.add(`${pkg} (${file})`);
        }
      }
      expect([...undeclared]).toEqual([]);
      for (const [name, range] of Object.entries(declared)) {
        if (ours.has(name)) expect({ name, range }).toEqual({ name, range: `^${manifest.version}` });
      }
      if (manifest.name.includes('/adapters-')) {
        expect(manifest.dependencies?.['@edge-gateway/core']).toBeUndefined();
        expect(manifest.peerDependencies?.['@edge-gateway/core']).toBe(`^${manifest.version}`);
      }
      // Optional peers are for optional entries only; @opentelemetry/api is always a range.
      const api = declared['@opentelemetry/api'];
      if (api !== undefined) expect(manifest.peerDependencies?.['@opentelemetry/api']).toBe('^1.9.0');
    });
  });

  it('install next to other versions of the test tools an application already has (npm resolves no conflict)', () => {
    const work = mkdtempSync(join(tmpdir(), 'eg-pack-'));
    try {
      const tarballs = ['@edge-gateway/protocol', '@edge-gateway/core', '@edge-gateway/adapters-redis'].map((name) => {
        const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work, '--workspace', name], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        return join(work, (JSON.parse(out) as { filename: string }[])[0]?.filename ?? '');
      });
      const app = join(work, 'app');
      execFileSync('mkdir', ['-p', app]);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
      // The finding this guards: core's test helpers pinned vitest ^4.1 and sdk-metrics 2.12.0
      // exactly, so an app on vitest 3 or sdk-metrics 2.0 failed with ERESOLVE.
      const result = execFileSync(
        'npm',
        ['install', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs, 'vitest@3', '@opentelemetry/sdk-metrics@2.0.0', '@opentelemetry/api@1.9.0'],
        { cwd: app, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 },
      );
      expect(result).not.toMatch(/ERESOLVE/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 240_000);

  it('are versioned with changesets: every pending change names published packages and a bump', () => {
    const config = JSON.parse(readFileSync(join(REPO_ROOT, '.changeset/config.json'), 'utf8')) as { access: string; privatePackages: unknown };
    expect(config).toMatchObject({ access: 'public', privatePackages: { version: false, tag: false } });
    const published = new Set(manifests.map((m) => m.manifest.name));
    const pending = readdirSync(join(REPO_ROOT, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md');
    for (const file of pending) {
      const front = /^---\n([\s\S]*?)\n---\n+\S/.exec(readFileSync(join(REPO_ROOT, '.changeset', file), 'utf8'))?.[1];
      expect(front, file).toBeDefined();
      for (const line of (front ?? '').split('\n')) {
        const [, name, bump] = /^"([^"]+)": (patch|minor|major)$/.exec(line) ?? [];
        expect({ file, line, published: published.has(name ?? ''), bump }).toEqual({ file, line, published: true, bump: expect.stringMatching(/^(patch|minor|major)$/) });
      }
    }
  });

  it('typings leave out @internal members (stripInternal)', () => {
    const hub = readFileSync(join(packagesDir, 'core/dist/push/push-hub.d.ts'), 'utf8');
    expect(hub).toContain('resume(): void;');
    expect(hub).not.toMatch(/\benqueue\(|\bmarkClosed\(|\bdetach\(/);
  });
});
