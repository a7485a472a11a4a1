import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

// A resolve hook that refuses the test runner, as a production install without devDependencies would.
const NO_VITEST = `data:text/javascript,${encodeURIComponent(
  'export async function resolve(s, c, next) { if (s === "vitest" || s.startsWith("vitest/")) throw new Error("ERR_MODULE_NOT_FOUND vitest"); return next(s, c); }',
)}`;

/** Imports `specifier` from the built package in a fresh Node process that cannot load vitest. */
function importWithoutVitest(specifier: string): Promise<{ ok: boolean; output: string }> {
  const script = `import { register } from 'node:module';
register(${JSON.stringify(NO_VITEST)});
const m = await import(${JSON.stringify(specifier)});
console.log(Object.keys(m).sort().join(','));`;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: packageDir }, (error, stdout, stderr) => {
      resolve({ ok: error === null, output: `${stdout}${stderr}` });
    });
  });
}

describe('published entry points (built dist)', () => {
  it('@edge-gateway/core/memory loads in a process without a test runner', async () => {
    const result = await importWithoutVitest('@edge-gateway/core/memory');
    expect(result.output).toContain('DEFAULT_MAX_BUCKETS_PER_RULE,FakeClock,InMemoryEventStream,InMemoryRateLimiter,InMemoryReplayStore,InMemoryRevocationStore,InMemorySessionStore');
    expect(result.ok).toBe(true);
  });

  it('@edge-gateway/core loads in a process without a test runner', async () => {
    const result = await importWithoutVitest('@edge-gateway/core');
    expect(result.output).toContain('createGatewayCore');
    expect(result.ok).toBe(true);
  });

  it('@edge-gateway/core/node (certificate and key files) loads in a process without a test runner', async () => {
    const result = await importWithoutVitest('@edge-gateway/core/node');
    expect(result.output).toContain('openTlsFiles');
    expect(result.ok).toBe(true);
  });

  it('the contract suites on @edge-gateway/core/testing do need vitest (the hook works)', async () => {
    const result = await importWithoutVitest('@edge-gateway/core/testing');
    expect(result.ok).toBe(false);
    expect(result.output).toContain('ERR_MODULE_NOT_FOUND vitest');
  });
});
