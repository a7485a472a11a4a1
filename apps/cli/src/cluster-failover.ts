import { isErrorReply, type RedisAddress, type RedisClient } from '@edge-gateway/adapters-redis';
import type { GatewayConfig } from '@edge-gateway/gateway/config';
import { CommandError, ExitCode, Mark, type CliIo } from './cli-io.js';
import { NodeConnections, addressText, errorText, nothingChanged, pause, replicationOf, type FailoverOptions } from './redis-nodes.js';

/** One line of `CLUSTER NODES`. */
export interface ClusterNodeLine {
  readonly id: string;
  readonly address: RedisAddress;
  readonly role: 'master' | 'replica';
  /** The master's id for a replica; `-` for a master. */
  readonly masterId: string;
  /** `fail`, `fail?`, `handshake` or `noaddr` flagged. */
  readonly failing: boolean;
  /** The slot ranges a master serves, as listed (`0-5460 …`). */
  readonly slots: string;
}

/** Parses `CLUSTER NODES` (`<id> <ip:port@cport[,hostname]> <flags> <master> … <slots>`). */
export function parseClusterNodes(text: string): ClusterNodeLine[] {
  const out: ClusterNodeLine[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id, addr, flagText, masterId] = parts as [string, string, string, string];
    const hostPort = addr.split(/[@,]/)[0] ?? '';
    const colon = hostPort.lastIndexOf(':');
    const flags = new Set(flagText.split(','));
    out.push({
      id,
      address: { host: hostPort.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(hostPort.slice(colon + 1)) },
      role: flags.has('master') ? 'master' : 'replica',
      masterId,
      failing: ['fail', 'fail?', 'handshake', 'noaddr'].some((f) => flags.has(f)),
      slots: parts.slice(8).filter((s) => !s.startsWith('[')).join(' '),
    });
  }
  return out;
}

/** The cluster as the first seed of `GATEWAY_REDIS_CLUSTER_NODES` that answers sees it. */
async function clusterView(nodes: NodeConnections, config: GatewayConfig): Promise<ClusterNodeLine[]> {
  const problems: string[] = [];
  for (const seed of config.redis.clusterNodes) {
    try {
      const client = await nodes.node(seed, 'cluster seed');
      return parseClusterNodes(String(await client.command(['CLUSTER', 'NODES'])));
    } catch (error) {
      problems.push(errorText(error));
    }
  }
  throw new CommandError(`no seed of GATEWAY_REDIS_CLUSTER_NODES answered CLUSTER NODES (${problems.join('; ')})`);
}

const describeMaster = (n: ClusterNodeLine): string => `${addressText(n.address)} (slots ${n.slots || 'none'})`;

/** Redis gives up a manual failover after 5 s; its master's client pause lasts twice that. */
const REDIS_MANUAL_FAILOVER_ABANDONED_MS = 10_000;

/**
 * A planned failover of one master of a Redis Cluster: `CLUSTER FAILOVER` (without `FORCE`)
 * on a replica of it. Redis then coordinates it so that no acknowledged write is lost: the
 * master pauses its clients, sends its replication offset, the replica waits until it has
 * processed it, and only then takes the slots over; the old master turns into its replica
 * (its paused clients are redirected with `MOVED`). Redis abandons a manual failover it cannot
 * finish within 5 s, and then nothing changed.
 */
export async function clusterFailover(
  io: CliIo,
  config: GatewayConfig,
  options: FailoverOptions & { readonly node: string | undefined; readonly replica: string | undefined },
): Promise<number> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  const nodes = new NodeConnections(config);
  let sent = false;
  try {
    const view = await clusterView(nodes, config);
    const masters = view.filter((n) => n.role === 'master' && n.slots !== '');
    if (options.node === undefined) {
      throw new CommandError(`name the master to fail over with --node <host:port|node id>; the masters are ${masters.map(describeMaster).join(', ')}`);
    }
    const named = view.find((n) => n.id === options.node || addressText(n.address) === options.node);
    if (named === undefined) throw new CommandError(`--node ${options.node} is not a node of this cluster; the masters are ${masters.map(describeMaster).join(', ')}`);
    if (named.role !== 'master') {
      const of = view.find((n) => n.id === named.masterId);
      throw new CommandError(`--node ${options.node} is a replica${of === undefined ? '' : ` of ${addressText(of.address)}`}: name the master to fail over`);
    }
    if (named.failing) {
      throw new CommandError(`master ${addressText(named.address)} is flagged failing: CLUSTER FAILOVER needs a master that answers (the cluster promotes a replica of a failed master by itself)`);
    }
    const listed = view.filter((n) => n.role === 'replica' && n.masterId === named.id);
    const replicas: Array<{ node: ClusterNodeLine; client: RedisClient; offset: number }> = [];
    for (const node of listed) {
      if (options.replica !== undefined && options.replica !== addressText(node.address) && options.replica !== node.id) continue;
      if (node.failing) {
        io.out(`${Mark.warn} replica ${addressText(node.address)} is flagged failing: not used`);
        continue;
      }
      try {
        const client = await nodes.node(node.address, 'replica');
        const info = await replicationOf(client);
        if (info.role === 'replica' && info.linkUp) replicas.push({ node, client, offset: info.processedOffset });
        else io.out(`${Mark.warn} replica ${addressText(node.address)} has no working link to its master: not used`);
      } catch (error) {
        io.out(`${Mark.warn} replica ${addressText(node.address)}: ${errorText(error)}: not used`);
      }
    }
    if (replicas.length === 0) {
      const which = options.replica === undefined ? '' : ` matching --replica ${options.replica}`;
      throw new CommandError(`master ${addressText(named.address)} has no replica${which} that answers with a working link (${listed.length} listed): refusing`);
    }
    const chosen = replicas.reduce((best, r) => (r.offset > best.offset ? r : best));
    const master = await nodes.node(named.address, 'master');
    const before = await replicationOf(master);
    io.out(
      `${Mark.ok} master ${describeMaster(named)} at replication offset ${before.masterReplOffset}; ` +
        `replica ${addressText(chosen.node.address)} at ${chosen.offset}, link up`,
    );

    sent = true;
    try {
      await chosen.client.command(['CLUSTER', 'FAILOVER']);
      io.out(`${Mark.ok} CLUSTER FAILOVER accepted by ${addressText(chosen.node.address)}: the master pauses its clients until the replica has its offset`);
    } catch (error) {
      if (isErrorReply(error)) throw new CommandError(`CLUSTER FAILOVER on ${addressText(chosen.node.address)}: ${errorText(error)}: nothing changed`);
      io.out(`${Mark.warn} CLUSTER FAILOVER on ${addressText(chosen.node.address)}: ${errorText(error)}; it may have started: watching`);
    }
    const sentAt = Date.now();

    let promoted = false;
    while (!promoted && Date.now() < deadline) {
      promoted = (await replicationOf(chosen.client).catch(() => undefined))?.role === 'master';
      if (!promoted) await pause(100);
    }
    if (!promoted) {
      const abandoned = Date.now() - sentAt >= REDIS_MANUAL_FAILOVER_ABANDONED_MS;
      io.out(
        `${Mark.fail} ${addressText(chosen.node.address)} was not promoted within ${Date.now() - sentAt}ms` +
          (abandoned
            ? ': Redis abandoned the manual failover (the replica did not reach the master\'s offset in 5 s, or the masters did not vote for it); nothing changed'
            : `: Redis may still complete it; check "CLUSTER NODES"`),
      );
      return abandoned ? ExitCode.failed : ExitCode.unconfirmed;
    }
    const after = await replicationOf(chosen.client);
    // The old master becomes a replica of the new one once the new configuration reaches it.
    let demoted = false;
    while (!demoted && Date.now() < deadline) {
      const info = await replicationOf(master).catch(() => undefined);
      demoted = info?.role === 'replica' && info.master?.port === chosen.node.address.port && info.master.host === chosen.node.address.host;
      if (!demoted) await pause(100);
    }
    const kept = after.promotedAtOffset ?? after.masterReplOffset;
    io.out(
      `${Mark.ok} new master ${addressText(chosen.node.address)} after ${Date.now() - started}ms: promoted at replication offset ${kept} ` +
        `(Redis promotes it only once it has processed the offset the master had when it paused its clients)`,
    );
    io.out(
      demoted
        ? `${Mark.ok} old master ${addressText(named.address)} is a replica of the new one; its paused clients were redirected (MOVED)`
        : `${Mark.warn} old master ${addressText(named.address)} does not report itself a replica of the new one yet`,
    );
    io.out(`new master: ${addressText(chosen.node.address)}`);
    return ExitCode.ok;
  } catch (error) {
    if (!sent) throw nothingChanged(error);
    io.out(`${Mark.fail} after CLUSTER FAILOVER: ${errorText(error)}; check "CLUSTER NODES"`);
    return ExitCode.unconfirmed;
  } finally {
    nodes.closeAll();
  }
}
