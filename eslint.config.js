// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const coreAllowed = ['node:crypto', '@opentelemetry/api', '@edge-gateway/protocol'];
// The Node-only entry @edge-gateway/core/node (src/node.ts, src/node/) also reads and watches files.
const coreNodeAllowed = [...coreAllowed, 'node:fs', 'node:fs/promises', 'node:tls'];

/** Anything but a relative path or one of `allowed` (packages/core/test/boundary.test.ts holds the same lists). */
const onlyAllowed = (allowed) => `^(?!\\.\\.?/${allowed.length === 0 ? '' : `|(?:${allowed.map((name) => name.replaceAll('.', '\\.')).join('|')})$`})`;

// The device SDKs and the protocol package stay server-free (issue 15): no core, no adapter, no driver.
const sdkBoundaries = [
  { files: ['packages/client/src/**/*.ts'], allowed: ['@edge-gateway/protocol', '@grpc/grpc-js', 'node:crypto'] },
  { files: ['packages/client-web/src/**/*.ts'], allowed: ['@edge-gateway/protocol'] },
  { files: ['packages/protocol/src/**/*.ts'], allowed: [] },
];

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/node_modules/**', '**/src/generated/**', 'bench/results/**', '.dev/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The core is transport-free (ARCHITECTURE.md): an allow-list, so no driver or adapter of
    // any name gets in (packages/core/test/boundary.test.ts checks the same rule).
    files: ['packages/core/src/**/*.ts'],
    ignores: ['packages/core/src/**/*.test.ts', 'packages/core/src/testing/**', 'packages/core/src/node.ts', 'packages/core/src/node/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              // Anything but a relative path or an allowed name.
              regex: onlyAllowed(coreAllowed),
              message: 'packages/core must stay transport-free: it may import only node:crypto, @opentelemetry/api and @edge-gateway/protocol; drivers belong in adapters.',
            },
            {
              regex: '(^|/)node(/|\\.js$)',
              message: 'only @edge-gateway/core/node (src/node.ts) imports src/node/: the main entry does no file I/O.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['packages/core/src/node.ts', 'packages/core/src/node/**/*.ts'],
    ignores: ['packages/core/src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: onlyAllowed(coreNodeAllowed),
              message: '@edge-gateway/core/node may import only node:crypto, node:fs, node:fs/promises, node:tls, @opentelemetry/api and @edge-gateway/protocol.',
            },
          ],
        },
      ],
    },
  },
  {
    // @edge-gateway/node-runtime sits beside the adapters, under the binaries: it takes the core
    // (and what the caller passes in) and never an app, an adapter or a driver.
    files: ['packages/node-runtime/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^@edge-gateway/(?!core(/internal)?$)',
              message: '@edge-gateway/node-runtime may import only @edge-gateway/core (and core/internal) of our packages: no app, no adapter.',
            },
            {
              regex: '^(redis|@redis/|@grpc/|ws$|ioredis)',
              message: '@edge-gateway/node-runtime loads no driver: instrumentations come from the caller (TelemetryOptions).',
            },
          ],
        },
      ],
    },
  },
  ...sdkBoundaries.map(({ files, allowed }) => ({
    files,
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: onlyAllowed(allowed),
              message: `${files[0].split('/src/')[0]} is device-side and server-free: it may import only ${allowed.length === 0 ? 'its own files' : allowed.join(', ')}; never the core, an adapter or a driver.`,
            },
          ],
        },
      ],
    },
  })),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
  },
);
