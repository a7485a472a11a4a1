import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Every exported error class of the published packages has a `name` of its own and a string
// `code` a caller can switch on (`err.code === 'redis_command_failed'`), as GatewayError does.
// GatewayStatusError is the one exception: its `code` is the status number of SPEC §4 (as
// grpc-js's ServiceError), and its `codeName` is the string.
const packagesDir = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

const classes = readdirSync(packagesDir)
  .filter((pkg) => pkg !== 'test-utils')
  .flatMap((pkg) => sources(join(packagesDir, pkg, 'src')))
  .flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    return [...text.matchAll(/^export class (\w+) extends Error \{\n([\s\S]*?)\n\}/gm)].map((m) => ({ file: file.slice(packagesDir.length), name: m[1] as string, body: m[2] as string }));
  });

describe('exported error classes', () => {
  it('are found', () => {
    expect(classes.map((c) => c.name)).toEqual(expect.arrayContaining(['GatewayError', 'RedisCommandError', 'WireFormatError', 'KeyFormatError']));
  });

  it.each(classes.map((c) => [c.name, c] as const))('%s has its own name and a string code', (name, { body }) => {
    expect(body).toMatch(new RegExp(`override readonly name(: string)? = '${name}';`));
    if (name === 'GatewayStatusError') expect(body).toMatch(/readonly codeName: string;/);
    else expect(body).toMatch(/readonly code(: GatewayErrorCode;| = '[a-z_]+';|: (HttpErrorCode|RedisBackendErrorCode),)/);
  });

  it('no two classes share a code', () => {
    const codes = classes.flatMap((c) => [.../readonly code = '([a-z_]+)'/.exec(c.body)?.slice(1) ?? []]);
    expect(new Set(codes).size).toBe(codes.length);
  });
});
