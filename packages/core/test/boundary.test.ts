import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The hexagon's rules as allow-lists (ARCHITECTURE.md), checked on every production source of
// the package, whatever a forbidden module is named. The core imports its own files, the
// transport-free protocol package, `node:crypto` and the OpenTelemetry API: no driver, no
// adapter. The device SDKs depend on the protocol package and their own transport only —
// never on the core, an adapter or a server driver (issue 15: the core as a product for
// embedders; a device app must not pull in the server). The protocol package imports nothing.
// Test-only files of the core may also use the test runner. eslint.config.js holds the same lists.

const PACKAGES_DIR = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(PACKAGES_DIR, 'core/src');

/** Allowed non-relative imports of production files, per package. */
const BOUNDARIES: Readonly<Record<string, { readonly allowed: ReadonlySet<string>; readonly dependencies: readonly string[] }>> = {
  core: { allowed: new Set(['node:crypto', '@opentelemetry/api', '@edge-gateway/protocol']), dependencies: ['@edge-gateway/protocol'] },
  protocol: { allowed: new Set(), dependencies: [] },
  client: { allowed: new Set(['@edge-gateway/protocol', '@grpc/grpc-js', 'node:crypto']), dependencies: ['@edge-gateway/protocol', '@grpc/grpc-js'] },
  'client-web': { allowed: new Set(['@edge-gateway/protocol']), dependencies: ['@edge-gateway/protocol'] },
};
/** Allowed non-relative imports of the core's production files. */
const ALLOWED = BOUNDARIES['core']!.allowed;
/** Allowed in addition in test files and the `testing` entry point (contract suites, metrics harness). */
const ALLOWED_IN_TESTS = new Set(['vitest', '@opentelemetry/sdk-metrics', 'fast-check']);
/**
 * Allowed in addition in the Node-only entry `@edge-gateway/core/node` (`node.ts`, `node/`):
 * reading and watching certificate and key files. No other file of the core imports them, or
 * imports `node/` (so the main entry stays free of file I/O).
 */
const ALLOWED_IN_NODE_ENTRY = new Set(['node:fs', 'node:fs/promises', 'node:tls']);
/** And in its unit tests (temporary files, `mkfifo`). */
const ALLOWED_IN_NODE_TESTS = new Set(['node:child_process', 'node:os', 'node:path']);
const inNodeEntry = (file: string): boolean => file === 'node.ts' || file.startsWith('node/');

/** Every module specifier of a TypeScript source (static imports and exports, dynamic imports, require). */
function specifiersOf(source: string): string[] {
  const found: string[] = [];
  const patterns = [/\b(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1] as string);
  return found;
}

/** The imports of `file` the boundary forbids. */
function forbiddenImports(file: string, source: string, allowed: ReadonlySet<string> = ALLOWED): string[] {
  const testOnly = file.endsWith('.test.ts') || file.startsWith('testing/');
  const nodeEntry = allowed === ALLOWED && inNodeEntry(file);
  return specifiersOf(source).filter((s) => {
    if (s.startsWith('./') || s.startsWith('../')) return allowed === ALLOWED && !nodeEntry && !testOnly && /(^|\/)node(\/|\.js$)/.test(s);
    if (allowed.has(s)) return false;
    if (nodeEntry && ALLOWED_IN_NODE_ENTRY.has(s)) return false;
    if (nodeEntry && testOnly && ALLOWED_IN_NODE_TESTS.has(s)) return false;
    return !(testOnly && ALLOWED_IN_TESTS.has(s));
  });
}

/** `package: file: specifier` for every forbidden import of a package's production sources. */
function violationsOf(name: string, allowed: ReadonlySet<string>): { files: number; violations: string[] } {
  const src = join(PACKAGES_DIR, name, 'src');
  // Unit tests next to the sources are not shipped: only the core's may use the test runner.
  const files = sources(src).filter((path) => name === 'core' || !path.endsWith('.test.ts'));
  const violations = files.flatMap((path) => {
    const file = relative(src, path).split('\\').join('/');
    return forbiddenImports(file, readFileSync(path, 'utf8'), allowed).map((s) => `${name}: ${file}: ${s}`);
  });
  return { files: files.length, violations };
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

describe('core boundary (allow-list)', () => {
  it('finds drivers and adapters under any name, however imported', () => {
    const sample = [
      "import { createClient } from '@redis/client';",
      "import type { Socket } from 'node:net';",
      "export { x } from '@edge-gateway/adapters-redis';",
      "const ws = await import('ws');",
      "import 'express';",
      "import { helper } from './helper.js';",
      "import { trace } from '@opentelemetry/api';",
    ].join('\n');
    expect(forbiddenImports('services/x.ts', sample)).toEqual(['@redis/client', 'node:net', '@edge-gateway/adapters-redis', 'express', 'ws']);
    expect(forbiddenImports('services/x.ts', "import { it } from 'vitest';")).toEqual(['vitest']);
    expect(forbiddenImports('services/x.test.ts', "import { it } from 'vitest';")).toEqual([]);
  });

  it('lets only the Node-only entry (node.ts, node/) read files, and nothing else import it', () => {
    const files = "import { watchFile } from 'node:fs';\nimport { createSecureContext } from 'node:tls';\nimport { connect } from 'node:net';";
    expect(forbiddenImports('node/tls-files.ts', files)).toEqual(['node:net']);
    expect(forbiddenImports('node.ts', "export { x } from './node/tls-files.js';")).toEqual([]);
    expect(forbiddenImports('signing/keys.ts', files)).toEqual(['node:fs', 'node:tls', 'node:net']);
    expect(forbiddenImports('index.ts', "export { openTlsFiles } from './node/tls-files.js';\nexport * from './node.js';")).toEqual(['./node/tls-files.js', './node.js']);
    expect(forbiddenImports('services/x.ts', "import { y } from '../node/bounded-file.js';\nimport { z } from './nodes.js';")).toEqual(['../node/bounded-file.js']);
  });

  it('holds for every file of packages/core/src', () => {
    const { files, violations } = violationsOf('core', ALLOWED);
    expect(files).toBeGreaterThan(20);
    expect(sources(SRC)).toHaveLength(files);
    expect(violations).toEqual([]);
  });
});

describe('device SDK and protocol boundaries (allow-lists)', () => {
  it('the device SDKs may not import the core, an adapter or a server driver, under any name', () => {
    const sample = [
      "import { keyId } from '@edge-gateway/core';",
      "import { EdgeGatewayClient } from '@edge-gateway/adapters-grpc/generated';",
      "export { x } from '@edge-gateway/adapters-ws';",
      "import { createClient } from 'redis';",
      "import type { WebSocket } from 'ws';",
      "const e = await import('express');",
      "import { DeviceSessionState } from '@edge-gateway/protocol';",
      "import { Client } from '@grpc/grpc-js';",
      "import { sign } from 'node:crypto';",
    ].join('\n');
    expect(forbiddenImports('gateway-client.ts', sample, BOUNDARIES['client']!.allowed)).toEqual([
      '@edge-gateway/core',
      '@edge-gateway/adapters-grpc/generated',
      '@edge-gateway/adapters-ws',
      'redis',
      'ws',
      'express',
    ]);
    expect(forbiddenImports('web-gateway-client.ts', sample, BOUNDARIES['client-web']!.allowed)).toEqual([
      '@edge-gateway/core',
      '@edge-gateway/adapters-grpc/generated',
      '@edge-gateway/adapters-ws',
      'redis',
      'ws',
      '@grpc/grpc-js',
      'node:crypto',
      'express',
    ]);
  });

  it.each(['client', 'client-web', 'protocol'])('holds for every production file of packages/%s/src', (name) => {
    const { files, violations } = violationsOf(name, BOUNDARIES[name]!.allowed);
    expect(files).toBeGreaterThan(0);
    expect(violations).toEqual([]);
  });

  it.each(Object.keys(BOUNDARIES))('@edge-gateway/%s declares exactly its allowed runtime dependencies', (name) => {
    const manifest = JSON.parse(readFileSync(join(PACKAGES_DIR, name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const declared = Object.keys(manifest.dependencies ?? {});
    expect(declared.sort()).toEqual([...BOUNDARIES[name]!.dependencies].sort());
  });
});
