import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { generateEd25519Key, isValidId, isValidUserId, parseSessionFields, type RawFields } from '@edge-gateway/core';
import type { GatewayConfig } from '@edge-gateway/gateway/config';
import { loadSignerKey } from '@edge-gateway/core/node';
import { CommandError, ExitCode, Mark, parseCommandArgs, UsageError, type CliIo } from './cli-io.js';
import {
  fieldsFromReply,
  flatten,
  loadRedisCommandConfig,
  parseReplicaWait,
  reportReplication,
  withRedis,
  type CliRedisClient,
} from './cli-redis.js';
import { writePrivateKeyFile } from './key-file.js';
import { sessionRecordFields } from '@edge-gateway/protocol';

export const SESSIONS_USAGE = `Usage: edge-gateway sessions show <device_session_id>
       edge-gateway sessions revoke <device_session_id> [--wait <duration>]
       edge-gateway sessions create --user <user_id> [--id <device_session_id>] [--out <device.pem>] [--force] [--wait <duration>]

  show <id>     print the device-session record (HGETALL <prefix>session:<id>) and whether
                the gateway accepts it; a malformed record is flagged with the reason (the
                gateway treats such a session as unknown). Exit 1 when missing or malformed.
  revoke <id>   revoke the session the way the auth service must: first write the record
                (status=revoked, revoked_at_ms=now), then XADD the revoked snapshot to the
                session-events stream, then WAIT for a replica. Every gateway closes that
                session's streams with FAILED_PRECONDITION "device session is revoked" and
                refuses new requests.
  create        create a device session the way the auth service does: a new Ed25519 device
                key pair, the active record (HSET <prefix>session:<id>), then its active
                snapshot (XADD to the session-events stream), then WAIT for a replica.
                Prints the id and where the device's private key went (PKCS#8 PEM, mode
                0600). Refuses an id that already has a record.

revoke and create wait (WAIT 1 <ms>) until a replica acknowledged the record and the
snapshot, so a failover cannot lose them, and say whether one did; none within the
time: exit 3 (the write is on the master only). --wait 0 does not wait. A lone master
(GATEWAY_REDIS_MASTER_ADDR without GATEWAY_REDIS_REPLICA_ADDRS) has no replica to wait for.

Uses the gateway's GATEWAY_REDIS_* variables, GATEWAY_REDIS_KEY_PREFIX and
GATEWAY_SESSION_EVENTS_REDIS_STREAM.

Options (create):
  --user <id>   the user_id of the session (required)
  --id <id>     the device_session_id (default: a random "ds-" id)
  --out <path>  where to write the device's private key (default: <device_session_id>.pem)
  --force       replace an existing key file (never an existing session record)

Options (revoke, create):
  --wait <d>    how long to wait for a replica (Go duration, default 1s, at most 1m; 0: do not wait)
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

async function readRecord(client: CliRedisClient, key: string): Promise<RawFields | undefined> {
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

async function revoke(io: CliIo, config: GatewayConfig, id: string, waitMs: number): Promise<number> {
  return withRedis(config, async (client) => {
    const key = sessionKey(config, id);
    const record = await readRecord(client, key);
    if (record === undefined) {
      throw new CommandError(`no record at ${key}: nothing to revoke (the gateway already answers "unknown device session")`);
    }
    const revokedAtMs = String(Date.now());
    const snapshot: Record<string, string> = {};
    for (const name of RECORD_FIELDS) if (record[name] !== undefined) snapshot[name] = record[name];
    // The snapshot names the session of the key, whatever the record says: it is what revokes.
    snapshot['device_session_id'] = id;
    snapshot['status'] = 'revoked';
    snapshot['revoked_at_ms'] = revokedAtMs;
    const parsed = parseSessionFields(snapshot);
    if (!parsed.ok) {
      // Fail closed: a revoked snapshot with broken fields still revokes (SPEC §5.3), so a
      // malformed record is no reason to leave the session's open streams running.
      io.out(`${Mark.warn} the record at ${key} is malformed (${parsed.reason}); revoking anyway (the gateway applies a revoked snapshot with broken fields)`);
    }
    if (record['status'] === 'revoked') io.out(`${Mark.warn} the record was already revoked; writing it and its snapshot again`);
    // Record first, then snapshot: a gateway that reloads the record after the snapshot must see it revoked.
    await client.command(['HSET', key, 'status', 'revoked', 'revoked_at_ms', revokedAtMs]);
    io.out(`${Mark.ok} record ${key}: status=revoked revoked_at_ms=${revokedAtMs}`);
    const entryId = String(await client.command(['XADD', config.sessionEventsStream, '*', ...flatten(snapshot)]));
    io.out(`${Mark.ok} revoked snapshot appended to ${config.sessionEventsStream} as ${entryId}`);
    io.out(`open streams of ${id} close with FAILED_PRECONDITION "device session is revoked" once each gateway consumes it`);
    return reportReplication(
      io,
      config,
      client,
      {
        keys: [key, config.sessionEventsStream],
        what: 'the revoked record and snapshot',
        risk: `a failover now can lose the revocation (every gateway that saw it keeps refusing the session and writes it back, SPEC §5.3); run "sessions revoke ${id}" again to retry`,
      },
      waitMs,
    );
  });
}

interface CreateOptions {
  readonly userId: string;
  readonly id: string;
  readonly out: string;
  readonly force: boolean;
  readonly waitMs: number;
}

async function create(io: CliIo, config: GatewayConfig, options: CreateOptions): Promise<number> {
  const { userId, id } = options;
  const key = generateEd25519Key();
  const record = sessionRecordFields({ deviceSessionId: id, userId, status: 'active', clientPublicKey: key.publicKeyRaw });
  // The gateway's own parser judges the record before anything is written.
  const parsed = parseSessionFields(record);
  if (!parsed.ok) throw new CommandError(`refusing to create: ${parsed.reason}`);
  // The trusted gateway key is printed for the device when the signer key is at hand; it is
  // optional here (the auth service hands it out), so a missing or bad file is only noted.
  const signerPath = io.env['GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH']?.trim();
  const signer = signerPath === undefined || signerPath === '' ? undefined : await loadSignerKey(signerPath).catch(() => undefined);

  return withRedis(config, async (client) => {
    const recordKey = sessionKey(config, id);
    if (Number(await client.command(['EXISTS', recordKey])) > 0) {
      throw new CommandError(`${recordKey} already exists: refusing to replace another device's key (choose another --id, or revoke that session)`);
    }
    // The key file first: a record whose private key could not be saved would be useless.
    const path = writePrivateKeyFile(options.out, key.pem, options.force);
    let entryId: string;
    try {
      // Record first, then snapshot (SPEC §5.1): a gateway that reloads after the snapshot sees it.
      // HSETNX-like safety: a record created by someone else since EXISTS is not overwritten.
      const created = Number(await client.command(['HSETNX', recordKey, 'device_session_id', id]));
      if (created !== 1) throw new CommandError(`${recordKey} was created meanwhile by someone else: refusing to replace it`);
      await client.command(['HSET', recordKey, ...flatten(record)]);
      entryId = String(await client.command(['XADD', config.sessionEventsStream, '*', ...flatten(record)]));
    } catch (error) {
      rmSync(path, { force: true });
      throw error;
    }
    io.out(`${Mark.ok} device session ${id} of user ${userId} created, status active`);
    io.out(`  record            ${recordKey}`);
    io.out(`  snapshot          ${config.sessionEventsStream} ${entryId}`);
    io.out(`  client public key ${record['client_public_key'] as string}`);
    if (signer !== undefined) {
      io.out(`  gateway key       ${Buffer.from(signer.publicKey).toString('base64')} (key id ${signer.keyId}): the device trusts this`);
    }
    const code = await reportReplication(
      io,
      config,
      client,
      {
        keys: [recordKey, config.sessionEventsStream],
        what: 'the record and snapshot',
        risk: `a failover now can lose the session (the device would get UNAUTHENTICATED "unknown device session"); check with "sessions show ${id}" after a failover`,
      },
      options.waitMs,
    );
    // The last two lines stay stable for scripts.
    io.out(`device_session_id: ${id}`);
    io.out(`private key: ${path} (PKCS#8 PEM Ed25519, mode 0600; give it to the device only)`);
    return code;
  });
}

function parseCreate(args: { string(name: string): string | undefined; flag(name: string): boolean }): CreateOptions {
  const userId = args.string('user');
  if (userId === undefined || userId === '') throw new UsageError('--user <user_id> is required', SESSIONS_USAGE);
  // The gateway refuses a record whose user_id breaks the id rule (SPEC §5.1).
  if (!isValidUserId(userId)) throw new UsageError('--user must be a user_id (1-256 characters, no control characters)', SESSIONS_USAGE);
  const id = args.string('id') ?? `ds-${randomBytes(12).toString('hex')}`;
  if (!isValidId(id)) throw new UsageError(`"${id}" is not a device_session_id (1-128 characters of [A-Za-z0-9._:-])`, SESSIONS_USAGE);
  const out = args.string('out') ?? `${id}.pem`;
  if (out === '') throw new UsageError('--out must not be empty', SESSIONS_USAGE);
  return { userId, id, out, force: args.flag('force'), waitMs: parseWait(args) };
}

function parseWait(args: { string(name: string): string | undefined }): number {
  return parseReplicaWait(args.string('wait'), SESSIONS_USAGE);
}

/** `edge-gateway sessions show|revoke <id>` and `sessions create --user U`. */
export async function sessionsCommand(io: CliIo, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    io,
    argv,
    SESSIONS_USAGE,
    { user: { type: 'string' }, id: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' }, wait: { type: 'string' } },
    { min: 0, max: 2 },
  );
  if (args === undefined) return ExitCode.ok;
  const [action, id] = args.positionals;
  if (action === undefined) throw new UsageError('missing subcommand (show, revoke or create)', SESSIONS_USAGE);
  if (action === 'create') {
    if (id !== undefined) throw new UsageError(`unexpected argument "${id}" (use --id)`, SESSIONS_USAGE);
    const options = parseCreate(args);
    return create(io, loadRedisCommandConfig(io.env), options);
  }
  if (action !== 'show' && action !== 'revoke') throw new UsageError(`unknown subcommand "${action}"`, SESSIONS_USAGE);
  for (const option of ['user', 'id', 'out']) {
    if (args.string(option) !== undefined) throw new UsageError(`--${option} is only for "sessions create"`, SESSIONS_USAGE);
  }
  if (id === undefined) throw new UsageError('missing <device_session_id>', SESSIONS_USAGE);
  if (!isValidId(id)) throw new UsageError(`"${id}" is not a device_session_id (1-128 characters of [A-Za-z0-9._:-])`, SESSIONS_USAGE);
  if (action === 'show' && args.string('wait') !== undefined) throw new UsageError('--wait is only for "sessions revoke" and "sessions create"', SESSIONS_USAGE);
  const waitMs = parseWait(args);
  const config = loadRedisCommandConfig(io.env);
  return action === 'show' ? show(io, config, id) : revoke(io, config, id, waitMs);
}
