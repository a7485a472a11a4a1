import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The hexagon's rule as an allow-list (ARCHITECTURE.md): the core imports its own files, the
// transport-free protocol package, `node:crypto` and the OpenTelemetry API, and nothing else —
// no driver, no adapter, whatever its name. Test-only files may also use the test runner.

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/** Allowed non-relative imports of production files. */
const ALLOWED = new Set(['node:crypto', '@opentelemetry/api', '@edge-gateway/protocol']);
/** Allowed in addition in test files and the `testing` entry point (contract suites, metrics harness). */
const ALLOWED_IN_TESTS = new Set(['vitest', '@opentelemetry/sdk-metrics']);

/** Every module specifier of a TypeScript source (static imports and exports, dynamic imports, require). */
function specifiersOf(source: string): string[] {
  const found: string[] = [];
  const patterns = [/\b(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1] as string);
  return found;
}

/** The imports of `file` the boundary forbids. */
function forbiddenImports(file: string, source: string): string[] {
  const testOnly = file.endsWith('.test.ts') || file.startsWith('testing/');
  return specifiersOf(source).filter((s) => {
    if (s.startsWith('./') || s.startsWith('../')) return false;
    if (ALLOWED.has(s)) return false;
    return !(testOnly && ALLOWED_IN_TESTS.has(s));
  });
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

  it('holds for every file of packages/core/src', () => {
    const files = sources(SRC);
    expect(files.length).toBeGreaterThan(20);
    const violations = files.flatMap((path) => {
      const file = relative(SRC, path).split('\\').join('/');
      return forbiddenImports(file, readFileSync(path, 'utf8')).map((s) => `${file}: ${s}`);
    });
    expect(violations).toEqual([]);
  });
});
