import { readFile } from 'node:fs/promises';
import { isValidId, parseClientEvent } from '@edge-gateway/core';
import { RedisRoutedPublisher, RedisClusterClient, routedUserKeys } from '@edge-gateway/adapters-redis';
import { CommandError, ExitCode, Mark, parseCommandArgs, UsageError, type CliIo } from './cli-io.js';
import { flatten, loadRedisCommandConfig, parseReplicaWait, reportReplication, withRedis } from './cli-redis.js';
import { clientEventFields } from '@edge-gateway/protocol';

export const EVENTS_USAGE = `Usage: edge-gateway events publish --user <user_id> [--session <device_session_id>]
                                  --type <event_type> (--payload-file <path> | --payload <text>)
                                  [--durable [--wait <duration>]]

Appends one push event to the client-events stream (GATEWAY_CLIENT_EVENTS_REDIS_STREAM) as a
publisher would (SPEC §5.4): user_id, optional device_session_id, event_type and
payload_base64. Without --session every stream of the user gets it; with it, only that
session's streams. Entries the gateway would drop as malformed are refused with the reason
(for example an event_type with the reserved "gateway." prefix).

With GATEWAY_PUSH_FANOUT=routed (on GATEWAY_REDIS_CLUSTER_NODES) the event is published the
routed way instead (SPEC §9.2): the publish function is loaded on every master, then one
FCALL appends it to the user's history stream and publishes it on the user's channel.

With --durable it then waits (WAIT 1 <ms> on the connection that wrote) until a replica holds
the event (SPEC §5.4, §9.2) and says whether one acknowledged it: when none did within --wait,
exit 3 (the event was published, on the master only: a failover now would lose it; publishing
again adds it twice). A lone master (GATEWAY_REDIS_MASTER_ADDR without
GATEWAY_REDIS_REPLICA_ADDRS) has no replica to wait for.

Options:
  --user <id>            target user (required)
  --session <id>         target device session (optional)
  --type <event_type>    1-128 characters of [a-z0-9._-], starting with a letter (required)
  --payload <text>       payload as UTF-8 text
  --payload-file <path>  payload bytes from a file ("-" for stdin)
  --durable              wait until a replica acknowledged the event (exit 3 when none did)
  --wait <duration>      with --durable: how long to wait (Go duration, default 1s, at most 1m)
  -h, --help             show this help`;

async function readPayload(file: string): Promise<Buffer> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(file);
  } catch (error) {
    throw new CommandError(`cannot read --payload-file ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

/** `edge-gateway events publish`. */
export async function eventsCommand(io: CliIo, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    io,
    argv,
    EVENTS_USAGE,
    {
      user: { type: 'string' },
      session: { type: 'string' },
      type: { type: 'string' },
      payload: { type: 'string' },
      'payload-file': { type: 'string' },
      durable: { type: 'boolean' },
      wait: { type: 'string' },
    },
    { min: 0, max: 1 },
  );
  if (args === undefined) return ExitCode.ok;
  const [action] = args.positionals;
  if (action !== 'publish') throw new UsageError(action === undefined ? 'missing subcommand (publish)' : `unknown subcommand "${action}"`, EVENTS_USAGE);
  const user = args.string('user');
  const type = args.string('type');
  const session = args.string('session');
  const text = args.string('payload');
  const file = args.string('payload-file');
  if (user === undefined) throw new UsageError('--user is required', EVENTS_USAGE);
  if (type === undefined) throw new UsageError('--type is required', EVENTS_USAGE);
  if ((text === undefined) === (file === undefined)) throw new UsageError('give exactly one of --payload and --payload-file', EVENTS_USAGE);
  const durable = args.flag('durable');
  const waitText = args.string('wait');
  if (waitText !== undefined && !durable) throw new UsageError('--wait is only for --durable', EVENTS_USAGE);
  const waitMs = durable ? parseReplicaWait(waitText, EVENTS_USAGE) : 0;
  if (durable && waitMs === 0) throw new UsageError('--durable needs a --wait of at least 1ms', EVENTS_USAGE);

  const config = loadRedisCommandConfig(io.env);
  const payload = text !== undefined ? Buffer.from(text, 'utf8') : await readPayload(file as string);
  const fields = clientEventFields({ userId: user, eventType: type, payload, ...(session === undefined ? {} : { deviceSessionId: session }) });
  // The gateway's own parser decides what it would drop.
  const parsed = parseClientEvent({ id: '1-0', fields }, { maxEventBytes: config.core.pushMaxEventBytes });
  if (!parsed.ok) throw new CommandError(`refusing to publish: ${parsed.reason}; the gateway would drop this entry as malformed`);
  if (session !== undefined && session !== '' && !isValidId(session)) {
    throw new CommandError(`refusing to publish: --session "${session}" is not a device_session_id (1-128 characters of [A-Za-z0-9._:-]), so no stream could ever receive it`);
  }
  if (payload.length > config.core.maxPayloadBytes) {
    io.out(`${Mark.warn} the payload is ${payload.length} bytes, more than GATEWAY_MAX_PAYLOAD_BYTES (${config.core.maxPayloadBytes})`);
  }
  return withRedis(config, async (client) => {
    if (config.pushFanout === 'routed' && client instanceof RedisClusterClient) {
      const publisher = new RedisRoutedPublisher(client, {
        keyPrefix: config.redis.keyPrefix,
        historyMaxLen: config.pushRoutedHistoryMaxLen,
        historyTtlMs: config.pushRoutedHistoryTtlMs,
        maxEventBytes: config.core.pushMaxEventBytes,
      });
      await publisher.loadFunction();
      const result = await publisher.publish({ userId: user, ...(session === undefined ? {} : { deviceSessionId: session }), eventType: type, payload });
      const target = session === undefined || session === '' ? `every stream of user ${user}` : `session ${session} of user ${user}`;
      const history = routedUserKeys(config.redis.keyPrefix, user).history;
      io.out(
        `${Mark.ok} published (routed) to ${history} as ${result.id} ` +
          `(offset ${result.offset}, epoch ${result.epoch}): ${type} for ${target}, ${payload.length} payload bytes`,
      );
      return durable ? reportReplication(io, config, client, { keys: [history], what: `event ${result.id}`, risk: NOT_REPLICATED_RISK }, waitMs) : ExitCode.ok;
    }
    const id = String(await client.command(['XADD', config.clientEventsStream, '*', ...flatten(fields)]));
    const target = fields['device_session_id'] === undefined ? `every stream of user ${user}` : `session ${session as string} of user ${user}`;
    io.out(`${Mark.ok} appended to ${config.clientEventsStream} as ${id}: ${type} for ${target}, ${payload.length} payload bytes`);
    return durable ? reportReplication(io, config, client, { keys: [config.clientEventsStream], what: `event ${id}`, risk: NOT_REPLICATED_RISK }, waitMs) : ExitCode.ok;
  });
}

/** What an unreplicated event means, for `--durable`. */
const NOT_REPLICATED_RISK =
  'it is on the master only: a failover now would lose it; publishing it again adds it twice';
