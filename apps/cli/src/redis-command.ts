import { parseGoDuration } from '@edge-gateway/gateway/duration';
import { CommandError, ExitCode, parseCommandArgs, UsageError, type CliIo } from './cli-io.js';
import { loadRedisCommandConfig } from './cli-redis.js';
import { clusterFailover } from './cluster-failover.js';
import { sentinelFailover } from './sentinel-failover.js';

export const REDIS_USAGE = `Usage: edge-gateway redis failover [--node <host:port|node id>] [--replica <host:port|node id>]
                               [--pause <duration>] [--timeout <duration>]

A planned failover of the gateway's Redis that loses no write a master acknowledged:

  Sentinel (GATEWAY_REDIS_SENTINEL_ADDRS): checks that a Sentinel names the master, that
    SENTINEL CKQUORUM passes and that a replica can be promoted; pauses writes on the master
    (CLIENT PAUSE <pause> WRITE, renewed until the switch); waits until every replica Sentinel
    could promote has processed the master's replication offset (else it releases the pause
    and stops: nothing changed); runs SENTINEL FAILOVER <GATEWAY_REDIS_SENTINEL_MASTER_NAME>;
    waits for the Sentinel to report the new master; checks the new master holds that offset;
    makes the old master its replica (the writes held by the pause are refused READONLY, not
    applied) and releases the pause.
  Cluster (GATEWAY_REDIS_CLUSTER_NODES): CLUSTER FAILOVER (without FORCE) on the replica of the
    master named by --node (the linked replica with the highest offset, or --replica), then
    waits until it is the master and the old master its replica. Redis coordinates it: the
    master pauses its clients until the replica has its offset.

Writes are paused for the duration (a few seconds): gateway commands fail UNAVAILABLE
meanwhile and succeed again once the gateway follows the new master. The last line is
"new master: <host:port>".

Exit codes: 0 done and checked; 1 refused or aborted before anything changed (the reason is
printed); 2 usage; 3 started but not confirmed within --timeout (the message says what to check).

Uses the gateway's GATEWAY_REDIS_* variables (the data nodes' and the Sentinels' passwords,
GATEWAY_REDIS_PING_TIMEOUT for each connection, GATEWAY_REDIS_COMMAND_TIMEOUT for each command).

Options:
  --node <addr|id>     Cluster: the master to fail over (required; the error lists the masters)
  --replica <addr|id>  Cluster: the replica to promote (default: the linked one with the highest offset)
  --pause <duration>   Sentinel: CLIENT PAUSE lease, renewed until the switch; also the bound on
                       the replicas' catch-up (default 5s, 1s-60s)
  --timeout <duration> the bound on the whole failover (default 30s, 1s-10m)
  -h, --help           show this help`;

function duration(text: string | undefined, name: string, fallbackMs: number, minMs: number, maxMs: number): number {
  if (text === undefined) return fallbackMs;
  const ms = parseGoDuration(text);
  if (ms === undefined || ms < minMs || ms > maxMs) throw new UsageError(`${name} "${text}" is not a duration between ${minMs / 1000}s and ${maxMs / 1000}s (e.g. 5s, 1500ms)`, REDIS_USAGE);
  return Math.round(ms);
}

/** `edge-gateway redis failover`. */
export async function redisCommand(io: CliIo, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    io,
    argv,
    REDIS_USAGE,
    { node: { type: 'string' }, replica: { type: 'string' }, pause: { type: 'string' }, timeout: { type: 'string' } },
    { min: 0, max: 1 },
  );
  if (args === undefined) return ExitCode.ok;
  const [action] = args.positionals;
  if (action !== 'failover') throw new UsageError(action === undefined ? 'missing subcommand (failover)' : `unknown subcommand "${action}"`, REDIS_USAGE);
  const pauseMs = duration(args.string('pause'), '--pause', 5000, 1000, 60_000);
  const timeoutMs = duration(args.string('timeout'), '--timeout', 30_000, 1000, 600_000);
  const config = loadRedisCommandConfig(io.env);
  const { sentinel, clusterNodes } = config.redis;
  if (clusterNodes.length > 0) {
    return clusterFailover(io, config, { pauseMs, timeoutMs, node: args.string('node'), replica: args.string('replica') });
  }
  for (const option of ['node', 'replica']) {
    if (args.string(option) !== undefined) throw new UsageError(`--${option} applies to a Redis Cluster (GATEWAY_REDIS_CLUSTER_NODES) only`, REDIS_USAGE);
  }
  if (sentinel === undefined) {
    throw new CommandError(
      'no failover without Sentinel or a Cluster: with GATEWAY_REDIS_MASTER_ADDR the gateway cannot follow a new master ' +
        '(set GATEWAY_REDIS_SENTINEL_ADDRS and GATEWAY_REDIS_SENTINEL_MASTER_NAME, or GATEWAY_REDIS_CLUSTER_NODES)',
    );
  }
  return sentinelFailover(io, config, sentinel, { pauseMs, timeoutMs });
}
