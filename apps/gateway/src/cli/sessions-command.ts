import { isValidId, parseSessionFields, type RawFields } from '@edge-gateway/core';
import { type RedisClient } from '@edge-gateway/adapters-redis';
import type { GatewayConfig } from '../config/config.js';
import { CommandError, ExitCode, Mark, parseCommandArgs, UsageError, type CliIo } from './cli-io.js';
import { fieldsFromReply, flatten, loadRedisCommandConfig, withRedis } from './cli-redis.js';

export const SESSIONS_USAGE = `Usage: edge-gateway sessions <show|revoke> <device_session_id>

  show <id>     print the device-session record (HGETALL <prefix>session:<id>) and whether
                the gateway accepts it; a malformed record is flagged with the reason (the
                gateway treats such a session as unknown). Exit 1 when missing or malformed.
  revoke <id>   revoke the session the way the auth service must: first write the record
                (status=revoked, revoked_at_ms=now), then XADD the revoked snapshot to the
                session-events stream. Every gateway closes that session's streams with
                FAILED_PRECONDITION "device session is revoked" and refuses new requests.

Uses the gateway's GATEWAY_REDIS_* variables, GATEWAY_REDIS_KEY_PREFIX and
GATEWAY_SESSION_EVENTS_REDIS_STREAM.

Options:
  -h, --help    show this help`;

/** The record fields of SPEC §5.1, in display order. */
const RECORD_FIELDS = ['device_session_id', 'user_id', 'status', 'client_public_key', 'revoked_at_ms'] as const;

function sessionKey(config: GatewayConfig, id: string): string {
  return `${config.redis.keyPrefix}session:${id}`;
}

function printRecord(io: CliIo, key: string, record: RawFields): void {
  io.out(`record ${key}`);
  const names = [...RECORD_FIELDS.filter((f) => record[f] !== undefined), ...Object.keys(record).filter((f) => !(RECORD_FIELDS as readonly string[]).includes(f))];
  const width = Math.max(...names.map((n) => n.length));
  for (const name of names) {
    const value = record[name] as string;
    const note = name === 'revoked_at_ms' && /^\d+$/.test(value) ? ` (${new Date(Number(value)).toISOString()})` : '';
    io.out(`  ${name.padEnd(width)}  ${value}${note}`);
  }
}

async function readRecord(client: RedisClient, key: string): Promise<RawFields | undefined> {
  const record = fieldsFromReply(await client.command(['HGETALL', key]));
  return Object.keys(record).length === 0 ? undefined : record;
}

async function show(io: CliIo, config: GatewayConfig, id: string): Promise<number> {
  return withRedis(config, async (client) => {
    const key = sessionKey(config, id);
    const record = await readRecord(client, key);
    if (record === undefined) {
      io.out(`${Mark.fail} no record at ${key}: the gateway answers UNAUTHENTICATED "unknown device session"`);
      return ExitCode.failed;
    }
    printRecord(io, key, record);
    const parsed = parseSessionFields(record);
    if (!parsed.ok) {
      io.out(`${Mark.fail} malformed: ${parsed.reason}; the gateway treats the session as unknown (UNAUTHENTICATED "unknown device session")`);
      return ExitCode.failed;
    }
    if (parsed.session.deviceSessionId !== id) {
      io.out(`${Mark.warn} the record's device_session_id "${parsed.session.deviceSessionId}" differs from its key`);
    }
    io.out(
      parsed.session.status === 'active'
        ? `${Mark.ok} well-formed, active: the gateway accepts requests signed with this client key`
        : `${Mark.ok} well-formed, revoked: the gateway answers FAILED_PRECONDITION "device session is revoked"`,
    );
    return ExitCode.ok;
  });
}

async function revoke(io: CliIo, config: GatewayConfig, id: string): Promise<number> {
  return withRedis(config, async (client) => {
    const key = sessionKey(config, id);
    const record = await readRecord(client, key);
    if (record === undefined) {
      throw new CommandError(`no record at ${key}: nothing to revoke (the gateway already answers "unknown device session")`);
    }
    const revokedAtMs = String(Date.now());
    const snapshot: Record<string, string> = {};
    for (const name of RECORD_FIELDS) if (record[name] !== undefined) snapshot[name] = record[name];
    snapshot['status'] = 'revoked';
    snapshot['revoked_at_ms'] = revokedAtMs;
    const parsed = parseSessionFields(snapshot);
    if (!parsed.ok) {
      throw new CommandError(
        `the record at ${key} is malformed (${parsed.reason}): a snapshot built from it would be dropped by the gateway; fix the record first`,
      );
    }
    if (record['status'] === 'revoked') io.out(`${Mark.warn} the record was already revoked; writing it and its snapshot again`);
    // Record first, then snapshot: a gateway that reloads the record after the snapshot must see it revoked.
    await client.command(['HSET', key, 'status', 'revoked', 'revoked_at_ms', revokedAtMs]);
    io.out(`${Mark.ok} record ${key}: status=revoked revoked_at_ms=${revokedAtMs}`);
    const entryId = String(await client.command(['XADD', config.sessionEventsStream, '*', ...flatten(snapshot)]));
    io.out(`${Mark.ok} revoked snapshot appended to ${config.sessionEventsStream} as ${entryId}`);
    io.out(`open streams of ${id} close with FAILED_PRECONDITION "device session is revoked" once each gateway consumes it`);
    return ExitCode.ok;
  });
}

/** `edge-gateway sessions show|revoke <id>`. */
export async function sessionsCommand(io: CliIo, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(io, argv, SESSIONS_USAGE, {}, { min: 0, max: 2 });
  if (args === undefined) return ExitCode.ok;
  const [action, id] = args.positionals;
  if (action === undefined) throw new UsageError('missing subcommand (show or revoke)', SESSIONS_USAGE);
  if (action !== 'show' && action !== 'revoke') throw new UsageError(`unknown subcommand "${action}"`, SESSIONS_USAGE);
  if (id === undefined) throw new UsageError('missing <device_session_id>', SESSIONS_USAGE);
  if (!isValidId(id)) throw new UsageError(`"${id}" is not a device_session_id (1-128 characters of [A-Za-z0-9._:-])`, SESSIONS_USAGE);
  const config = loadRedisCommandConfig(io.env);
  return action === 'show' ? show(io, config, id) : revoke(io, config, id);
}
