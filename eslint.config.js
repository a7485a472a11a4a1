// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const coreAllowed = ['node:crypto', '@opentelemetry/api', '@edge-gateway/protocol'];

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
    ignores: ['packages/core/src/**/*.test.ts', 'packages/core/src/testing/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              // Anything but a relative path or an allowed name.
              regex: `^(?!\\.\\.?/|(?:${coreAllowed.map((name) => name.replaceAll('.', '\\.')).join('|')})$)`,
              message: 'packages/core must stay transport-free: it may import only node:crypto, @opentelemetry/api and @edge-gateway/protocol; drivers belong in adapters.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
  },
);
