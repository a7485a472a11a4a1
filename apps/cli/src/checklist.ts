import { Mark, type CliIo } from './cli-io.js';

/** Prints a ✓/✗ checklist line by line and remembers whether anything failed. */
export class Checklist {
  private failures: string[] = [];

  constructor(private readonly io: CliIo) {}

  ok(check: string, detail: string): void {
    this.io.out(`${Mark.ok} ${check}: ${detail}`);
  }

  fail(check: string, detail: string): void {
    this.failures.push(check);
    this.io.out(`${Mark.fail} ${check}: ${detail}`);
  }

  /** Worth a look, but not a failure. */
  warn(check: string, detail: string): void {
    this.io.out(`${Mark.warn} ${check}: ${detail}`);
  }

  skip(check: string, why: string): void {
    this.io.out(`${Mark.skip} ${check}: skipped (${why})`);
  }

  /** Names of the failed checks, in order. */
  get failed(): readonly string[] {
    return this.failures;
  }
}
