import { parseClientEvent, parseRevocation, parseSessionFields, type StreamEntry } from '@edge-gateway/core';
import { CommandError, ExitCode, Mark, parseCommandArgs, UsageError, type CliIo } from './cli-io.js';
import { entriesFromReply, loadRedisCommandConfig, withRedis, type CliRedisClient } from './cli-redis.js';

export const STREAMS_USAGE = `Usage: edge-gateway streams tail <session-events|client-events> [--from-start] [--count N]

Watches one of the gateway's streams (GATEWAY_SESSION_EVENTS_REDIS_STREAM or
GATEWAY_CLIENT_EVENTS_REDIS_STREAM) with XREAD BLOCK and prints each entry as the gateway
would see it: "✓" for an entry it consumes, "✗ MALFORMED" with the reason for one it drops.
Payload bytes are not printed, only their size. Ctrl-C stops.

Options:
  --from-start   print the entries already in the stream first (default: only new ones)
  --count <N>    stop after N entries
  -h, --help     show this help`;

/** The stream names `streams tail` accepts. */
export type StreamName = 'session-events' | 'client-events';

/** How the gateway judges one entry, and a one-line rendering of it without payload bytes. */
export function describeEntry(stream: StreamName, entry: StreamEntry): { ok: boolean; line: string } {
  const shown = Object.entries(entry.fields).map(([name, value]) => {
    if (name === 'payload_base64') return `payload=${Buffer.from(value, 'base64').length} bytes`;
    return `${name}=${value}`;
  });
  const parsed = stream === 'client-events' ? parseClientEvent(entry) : parseSessionFields(entry.fields);
  const details = shown.join(' ');
  if (parsed.ok) return { ok: true, line: `${Mark.ok} ${entry.id} ${details}` };
  const revocation = stream === 'session-events' ? parseRevocation(entry.fields) : undefined;
  if (revocation !== undefined) {
    // Fail closed: the gateway revokes anyway, and counts the entry as malformed.
    return { ok: false, line: `${Mark.fail} ${entry.id} INCOMPLETE revoked snapshot, the gateway revokes ${revocation.deviceSessionId} anyway: ${parsed.reason} | ${details}` };
  }
  return { ok: false, line: `${Mark.fail} ${entry.id} MALFORMED, the gateway drops it: ${parsed.reason} | ${details}` };
}

const BLOCK_MS = 1000;

async function lastId(client: CliRedisClient, key: string): Promise<string> {
  const type = String(await client.command(['TYPE', key]));
  if (type !== 'none' && type !== 'stream') throw new CommandError(`${key} holds a ${type}, not a stream`);
  const last = entriesFromReply(await client.command(['XREVRANGE', key, '+', '-', 'COUNT', '1']))[0];
  return last?.id ?? '0-0';
}

/** `edge-gateway streams tail`. */
export async function streamsCommand(io: CliIo, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(io, argv, STREAMS_USAGE, { 'from-start': { type: 'boolean' }, count: { type: 'string' } }, { min: 0, max: 2 });
  if (args === undefined) return ExitCode.ok;
  const [action, name] = args.positionals;
  if (action !== 'tail') throw new UsageError(action === undefined ? 'missing subcommand (tail)' : `unknown subcommand "${action}"`, STREAMS_USAGE);
  if (name !== 'session-events' && name !== 'client-events') {
    throw new UsageError(name === undefined ? 'missing stream (session-events or client-events)' : `unknown stream "${name}"`, STREAMS_USAGE);
  }
  const countText = args.string('count');
  if (countText !== undefined && !/^[1-9]\d*$/.test(countText)) throw new UsageError('--count must be a positive integer', STREAMS_USAGE);
  const limit = countText === undefined ? Infinity : Number(countText);
  const config = loadRedisCommandConfig(io.env);
  const key = name === 'session-events' ? config.sessionEventsStream : config.clientEventsStream;

  return withRedis(config, async (client) => {
    let after = args.flag('from-start') ? '0-0' : await lastId(client, key);
    io.out(`watching ${key} (${name}) after ${after}; Ctrl-C stops`);
    let printed = 0;
    let malformed = 0;
    const onAbort = (): void => client.destroy();
    io.signal.addEventListener('abort', onAbort, { once: true });
    const stopWatching = io.watchOutput?.();
    try {
      while (printed < limit && !io.signal.aborted) {
        let reply;
        try {
          reply = await client.command(['XREAD', 'COUNT', '100', 'BLOCK', String(BLOCK_MS), 'STREAMS', key, after], {
            timeoutMs: BLOCK_MS + config.redis.commandTimeoutMs,
          });
        } catch (error) {
          if (io.signal.aborted) break;
          io.err(`${Mark.warn} redis: ${error instanceof Error ? error.message : String(error)}; retrying in 1s`);
          await new Promise((resolve) => setTimeout(resolve, 1000));
          continue;
        }
        if (!Array.isArray(reply)) continue;
        const [, entries] = (reply[0] as [string, unknown] | undefined) ?? [];
        for (const entry of entriesFromReply((entries ?? null) as Parameters<typeof entriesFromReply>[0])) {
          after = entry.id;
          const described = describeEntry(name, entry);
          if (!described.ok) malformed += 1;
          io.out(described.line);
          printed += 1;
          if (printed >= limit) break;
        }
      }
    } finally {
      io.signal.removeEventListener('abort', onAbort);
      stopWatching?.();
    }
    io.out(`${printed} entries, ${malformed} malformed`);
    return ExitCode.ok;
  });
}
