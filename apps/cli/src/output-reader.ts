import { spawn } from 'node:child_process';
import { fstatSync } from 'node:fs';

/**
 * Calls `onGone` once the reader of this process's stdout pipe has gone away (for example
 * `edge-gateway streams tail … | head -1` after `head` exited), even while nothing is written.
 *
 * Node only learns that a pipe lost its reader on the next write (EPIPE), and a quiet
 * `streams tail` may not write for hours. GNU `tail -f /dev/null` polls its stdout for that
 * condition and exits as soon as it holds, so it runs as a watcher sharing our stdout; it
 * writes nothing. Where there is no such `tail` (or stdout is not a pipe) this does nothing
 * and the next write's EPIPE still stops the command. Returns a function that ends the watcher.
 */
export function watchOutputReader(onGone: () => void): () => void {
  let isPipe = false;
  try {
    isPipe = fstatSync(1).isFIFO();
  } catch {
    isPipe = false;
  }
  if (!isPipe) return () => undefined;
  let stopped = false;
  const watcher = spawn('tail', ['-f', '/dev/null'], { stdio: ['ignore', 'inherit', 'ignore'] });
  watcher.on('error', () => undefined);
  watcher.on('exit', (_code, signal) => {
    if (!stopped && signal === 'SIGPIPE') onGone();
  });
  watcher.unref();
  const stop = (): void => {
    stopped = true;
    watcher.kill();
  };
  process.once('exit', stop);
  return stop;
}
