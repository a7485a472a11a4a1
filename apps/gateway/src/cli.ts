#!/usr/bin/env node
import { runCli } from './cli/cli-main.js';

// The `edge-gateway` operator CLI (docs/cli.md).
const controller = new AbortController();
let interrupted = 0;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted += 1;
    if (interrupted > 1) process.exit(130);
    controller.abort();
    // Commands that do not watch the signal are cut short after a grace period.
    setTimeout(() => process.exit(130), 2000).unref();
  });
}

const code = await runCli(
  {
    env: process.env,
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    signal: controller.signal,
  },
  process.argv.slice(2),
);
process.exitCode = code;
