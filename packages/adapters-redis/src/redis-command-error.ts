/**
 * A Redis command that failed or timed out. The message names the command and the reason,
 * never its arguments (keys may be user data; AUTH carries the password).
 */
export class RedisCommandError extends Error {
  override readonly name = 'RedisCommandError';
  readonly code = 'redis_command_failed';

  constructor(
    /** Upper-case command name, e.g. `HGETALL`. */
    readonly command: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`redis ${command} failed: ${reason}`, options);
  }
}
