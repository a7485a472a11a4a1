import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// What `npm pack` would publish for each library package (from the built dist): the code and
// its typings, a README and a LICENSE, and nothing of the tests or the build's bookkeeping.
const PACKAGES = ['core', 'protocol', 'adapters-ws', 'client-web', 'client', 'adapters-grpc', 'adapters-http', 'adapters-redis'];
const packagesDir = fileURLToPath(new URL('../../', import.meta.url));

function packedFiles(name: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: `${packagesDir}${name}` }, (error, stdout) => {
      if (error !== null) return reject(error);
      resolve((JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]?.files.map((f) => f.path) ?? []);
    });
  });
}

describe.each(PACKAGES)('packed @edge-gateway/%s', (name) => {
  it('ships dist code and typings, README and LICENSE; no tests, sources or build info', async () => {
    const files = await packedFiles(name);
    expect(files).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts']));
    expect(files.filter((f) => /\.test\.|\.tsbuildinfo$|^src\/|^test\//.test(f))).toEqual([]);
  });

  it('declares an exports map and no `export *` barrel in its entry points', () => {
    const manifest = JSON.parse(readFileSync(`${packagesDir}${name}/package.json`, 'utf8')) as { exports: Record<string, { source: string }> };
    for (const entry of Object.values(manifest.exports)) {
      const source = readFileSync(`${packagesDir}${name}/${entry.source}`, 'utf8');
      expect(source, entry.source).not.toMatch(/export \* from/);
    }
  });
});

describe('typings', () => {
  it('leave out @internal members (stripInternal)', () => {
    const hub = readFileSync(`${packagesDir}core/dist/push/push-hub.d.ts`, 'utf8');
    expect(hub).toContain('resume(): void;');
    expect(hub).not.toMatch(/\benqueue\(|\bmarkClosed\(|\bdetach\(/);
  });

  it('core names @opentelemetry/api as a peer range, not a pinned dependency', () => {
    const manifest = JSON.parse(readFileSync(`${packagesDir}core/package.json`, 'utf8')) as { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> };
    expect(manifest.dependencies?.['@opentelemetry/api']).toBeUndefined();
    expect(manifest.peerDependencies?.['@opentelemetry/api']).toMatch(/^\^1\./);
  });
});
