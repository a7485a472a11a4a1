import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources through the `@edge-gateway/source`
// export condition, so tests never depend on a stale dist/ of a sibling package.
export default defineConfig({
  ssr: { resolve: { conditions: ['@edge-gateway/source'] } },
  resolve: { conditions: ['@edge-gateway/source'] },
  test: {
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['packages/*/test/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: ['apps/*/test/**/*.test.ts', 'examples/test/**/*.test.ts'],
          fileParallelism: false,
        },
      },
    ],
  },
});
