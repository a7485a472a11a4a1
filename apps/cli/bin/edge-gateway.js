#!/usr/bin/env node
// The `edge-gateway` bin. A committed launcher rather than dist/cli.js itself: npm links a
// bin at install time only when its file exists, and dist/ exists only after a build, so
// `npx edge-gateway` in a fresh checkout would otherwise never resolve.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('edge-gateway: the CLI is not built yet; run "npm run build" first\n');
  process.exit(1);
}
await import(cli.href);
