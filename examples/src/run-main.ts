import { pathToFileURL } from 'node:url';

/**
 * Whether the module at `url` is the script node was started with, so each example is both a
 * library (imported by the tests and by your code) and a runnable program.
 */
export function isMain(url: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && pathToFileURL(entry).href === url;
}

/** Reads a required environment variable, exiting with a clear message when it is missing. */
export function requireEnv(name: string): string {
  const value = process.env[name]?.trim();
  if (value === undefined || value === '') {
    process.stderr.write(`${name} is required\n`);
    process.exit(2);
  }
  return value;
}
