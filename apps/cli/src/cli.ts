#!/usr/bin/env node
import { runCli } from './cli-main.js';
import { watchOutputReader } from './output-reader.js';

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

// Output piped into `head` and the like: once the reader has gone, writing is pointless, so
// the command is stopped (the same abort as Ctrl-C) and the rest of its output is dropped,
// instead of an EPIPE stack trace.
let outputClosed = false;
const onOutputClosed = (): void => {
  outputClosed = true;
  controller.abort();
};
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    onOutputClosed();
  });
}

const code = await runCli(
  {
    env: process.env,
    out: (line) => {
      if (!outputClosed) process.stdout.write(`${line}\n`);
    },
    err: (line) => {
      if (!outputClosed) process.stderr.write(`${line}\n`);
    },
    signal: controller.signal,
    watchOutput: () => watchOutputReader(onOutputClosed),
  },
  process.argv.slice(2),
);
process.exitCode = code;
