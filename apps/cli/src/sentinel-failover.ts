import { isErrorReply, type RedisAddress, type RedisClient } from '@edge-gateway/adapters-redis';
import type { GatewayConfig, SentinelConfig } from '@edge-gateway/gateway/config';
import { CommandError, ExitCode, Mark, type CliIo } from './cli-io.js';
import { NodeConnections, WritePause, addressText, errorText, nothingChanged, pause, replicationOf, replyFields, type FailoverOptions } from './redis-nodes.js';

/**
 * One replica as `SENTINEL REPLICAS` lists it, and whether Sentinel might promote it: the
 * replicas its selection does not rule out by flags or priority (Sentinel's cached link
 * state may be seconds old, so the link is checked on the replica itself).
 */
interface SentinelReplica {
  readonly address: RedisAddress;
  readonly candidate: boolean;
  readonly why: string;
}

function sentinelReplicas(reply: unknown): SentinelReplica[] {
  if (!Array.isArray(reply)) return [];
  return reply.map((entry): SentinelReplica => {
    const fields = replyFields(entry);
    const flags = (fields['flags'] ?? '').split(',');
    const address = { host: fields['ip'] ?? '', port: Number(fields['port']) };
    const problems = [
      ...flags.filter((f) => f === 's_down' || f === 'o_down' || f === 'disconnected'),
      ...(fields['slave-priority'] === '0' ? ['replica-priority 0'] : []),
    ];
    return { address, candidate: problems.length === 0, why: problems.join(', ') };
  });
}

/** The first Sentinel (in `GATEWAY_REDIS_SENTINEL_ADDRS` order) that names the master. */
async function firstSentinel(nodes: NodeConnections, sentinel: SentinelConfig): Promise<{ client: RedisClient; master: RedisAddress }> {
  const problems: string[] = [];
  for (const address of sentinel.addrs) {
    try {
      const client = await nodes.connect(address, sentinel.password, 'Sentinel');
      const reply = await client.command(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', sentinel.masterName]);
      if (Array.isArray(reply) && reply.length === 2) return { client, master: { host: String(reply[0]), port: Number(reply[1]) } };
      problems.push(`${addressText(address)}: does not know master "${sentinel.masterName}"`);
    } catch (error) {
      problems.push(errorText(error));
    }
  }
  throw new CommandError(`no Sentinel named the master "${sentinel.masterName}" (${problems.join('; ')})`);
}

/** The master Sentinel `client` reports now (`SENTINEL MASTER`: changes once the failover completed). */
async function reportedMaster(client: RedisClient, name: string): Promise<{ address: RedisAddress; flags: string }> {
  const fields = replyFields(await client.command(['SENTINEL', 'MASTER', name]));
  return { address: { host: fields['ip'] ?? '', port: Number(fields['port']) }, flags: fields['flags'] ?? '' };
}

const sameAddress = (a: RedisAddress, b: RedisAddress): boolean => a.host === b.host && a.port === b.port;

/**
 * A planned failover under Sentinel that loses no acknowledged write:
 *
 * 1. preflight: a Sentinel names the master, `SENTINEL CKQUORUM` passes, at least one replica
 *    Sentinel could promote, and every such replica answers;
 * 2. `CLIENT PAUSE <lease> WRITE` on the master (renewed until the end): from its answer on,
 *    the master accepts no write, so its replication offset stops;
 * 3. every replica Sentinel could promote has processed that offset (`slave_repl_offset`),
 *    within one lease; otherwise the pause is released and nothing changed;
 * 4. `SENTINEL FAILOVER <name>`, then wait until that Sentinel reports the new master;
 * 5. check the new master holds the paused offset, make the old master a replica of it
 *    (`REPLICAOF`: the writes it held paused are then refused `READONLY`, never applied where
 *    they would be lost) and only then release the pause.
 */
export async function sentinelFailover(io: CliIo, config: GatewayConfig, sentinel: SentinelConfig, options: FailoverOptions): Promise<number> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  const nodes = new NodeConnections(config);
  let writes: WritePause | undefined;
  let failoverSent = false;
  try {
    // 1. Preflight: nothing is changed until every check passed.
    const { client: sentinelClient, master: oldMaster } = await firstSentinel(nodes, sentinel);
    const name = sentinel.masterName;
    const state = await reportedMaster(sentinelClient, name);
    if (state.flags !== 'master') throw new CommandError(`Sentinel ${sentinelClient.address} flags master "${name}" as "${state.flags}": refusing (a failover is in progress or the master is down)`);
    let quorum: string;
    try {
      quorum = String(await sentinelClient.command(['SENTINEL', 'CKQUORUM', name]));
    } catch (error) {
      throw new CommandError(`SENTINEL CKQUORUM ${name}: ${errorText(error)}: refusing (the Sentinels could not authorise a failover)`);
    }
    io.out(`${Mark.ok} sentinel ${sentinelClient.address}: master "${name}" is ${addressText(oldMaster)}; ${quorum}`);
    const master = await nodes.node(oldMaster, 'master');
    const masterInfo = await replicationOf(master);
    if (masterInfo.role !== 'master') throw new CommandError(`${addressText(oldMaster)} reports role ${masterInfo.role}, not master: refusing (Sentinel's view is stale; try again in a few seconds)`);
    const listed = sentinelReplicas(await sentinelClient.command(['SENTINEL', 'REPLICAS', name]));
    for (const r of listed.filter((x) => !x.candidate)) io.out(`${Mark.warn} replica ${addressText(r.address)} cannot be promoted (${r.why})`);
    const candidates = listed.filter((r) => r.candidate);
    if (candidates.length === 0) throw new CommandError(`no replica of "${name}" can be promoted (${listed.length} listed by Sentinel): refusing`);
    // Sentinel may promote any of them: each must answer, follow this master, and catch up.
    const replicas: Array<{ address: RedisAddress; client: RedisClient }> = [];
    for (const r of candidates) {
      const client = await nodes.node(r.address, 'replica');
      const info = await replicationOf(client);
      if (info.role !== 'replica' || info.master === undefined || info.master.port !== oldMaster.port || !info.linkUp) {
        throw new CommandError(
          `replica ${addressText(r.address)} ${info.role !== 'replica' ? `reports role ${info.role}` : `has no working link to ${addressText(oldMaster)}`}: Sentinel could promote it without the latest writes; refusing`,
        );
      }
      replicas.push({ address: r.address, client });
    }

    // 2. Pause writes: from the answer on, the master's offset no longer moves.
    writes = new WritePause(master, options.pauseMs);
    await writes.start();
    const paused = await replicationOf(master);
    const target = paused.masterReplOffset;
    io.out(`${Mark.ok} writes paused on ${addressText(oldMaster)} (CLIENT PAUSE ${options.pauseMs} WRITE, renewed until the switch) at replication offset ${target}`);

    // 3. Every replica Sentinel may promote holds everything the master acknowledged.
    const catchUpBy = Math.min(deadline, Date.now() + options.pauseMs);
    let offsets: number[] = [];
    for (;;) {
      offsets = await Promise.all(replicas.map(async (r) => (await replicationOf(r.client)).processedOffset));
      if (offsets.every((o) => o >= target)) break;
      if (Date.now() >= catchUpBy) {
        await writes.release();
        const behind = replicas.map((r, i) => `${addressText(r.address)} at ${offsets[i] ?? '?'}`).join(', ');
        throw new CommandError(`replicas did not catch up with offset ${target} within ${options.pauseMs}ms (${behind}): failover aborted, writes resumed on ${addressText(oldMaster)}; nothing changed`);
      }
      await pause(20);
    }
    io.out(`${Mark.ok} replicas caught up: ${replicas.map((r, i) => `${addressText(r.address)} at ${offsets[i]}`).join(', ')}`);

    // 4. Fail over and wait for the Sentinel to report the new master.
    failoverSent = true;
    try {
      await sentinelClient.command(['SENTINEL', 'FAILOVER', name]);
      io.out(`${Mark.ok} SENTINEL FAILOVER ${name} accepted by ${sentinelClient.address}`);
    } catch (error) {
      if (isErrorReply(error)) {
        // Refused (INPROG, NOGOODSLAVE, …): nothing started.
        failoverSent = false;
        throw new CommandError(`SENTINEL FAILOVER ${name}: ${errorText(error)}: writes resumed on ${addressText(oldMaster)}; nothing changed`);
      }
      // No answer: the failover may have started. Keep writes paused and watch for a switch.
      io.out(`${Mark.warn} SENTINEL FAILOVER ${name}: ${errorText(error)}; it may have started: writes stay paused while waiting for a new master`);
    }
    let newMaster: RedisAddress | undefined;
    while (newMaster === undefined && Date.now() < deadline) {
      const now = await reportedMaster(sentinelClient, name).catch(() => undefined);
      if (now !== undefined && !sameAddress(now.address, oldMaster) && !now.flags.includes('failover_in_progress')) newMaster = now.address;
      else await pause(100);
    }
    if (newMaster === undefined) {
      writes.stopRenewing();
      io.out(
        `${Mark.fail} no new master reported within ${options.timeoutMs}ms; writes on ${addressText(oldMaster)} resume when the pause ends ` +
          `(within ${options.pauseMs}ms). If Sentinel still completes the failover, writes the old master accepts after that may be lost: check "SENTINEL MASTER ${name}"`,
      );
      return ExitCode.unconfirmed;
    }

    // 5. The new master holds the paused offset; demote the old master before releasing it.
    const promoted = await nodes.node(newMaster, 'new master');
    const after = await replicationOf(promoted);
    const demoteSentAt = Date.now();
    let demoted = true;
    try {
      await master.command(['REPLICAOF', newMaster.host, String(newMaster.port)]);
    } catch (error) {
      demoted = false;
      writes.stopRenewing();
      io.out(`${Mark.warn} could not make ${addressText(oldMaster)} a replica (${errorText(error)}); its pause ends within ${options.pauseMs}ms and Sentinel reconfigures it`);
    }
    const lapsed = demoteSentAt > writes.heldUntil;
    if (demoted) await writes.release().catch(() => undefined);
    const elapsed = Date.now() - started;
    // The offset at which the new master left the old one's history: everything below it is kept.
    const kept = after.promotedAtOffset ?? after.masterReplOffset;
    const holds = after.role === 'master' && kept >= target;
    io.out(
      `${holds ? Mark.ok : Mark.fail} new master ${addressText(newMaster)} after ${elapsed}ms: promoted at replication offset ${kept}, ` +
        `${holds ? 'holding all' : 'MISSING some'} of the ${target} the old master had acknowledged`,
    );
    if (demoted) io.out(`${Mark.ok} old master ${addressText(oldMaster)} is a replica of the new one, writes unpaused: writes it held are refused READONLY (never applied)`);
    if (lapsed) {
      io.out(`${Mark.fail} the write pause on ${addressText(oldMaster)} may have lapsed before it was demoted (renewals failed): writes it accepted meanwhile may be lost`);
    }
    io.out(`new master: ${addressText(newMaster)}`);
    return holds && !lapsed ? ExitCode.ok : ExitCode.unconfirmed;
  } catch (error) {
    // Before SENTINEL FAILOVER nothing changed: end the pause now rather than after a lease.
    if (writes !== undefined && !failoverSent) await writes.release().catch(() => undefined);
    writes?.stopRenewing();
    if (!failoverSent) throw nothingChanged(error);
    io.out(`${Mark.fail} after SENTINEL FAILOVER: ${errorText(error)}; check "SENTINEL MASTER ${sentinel.masterName}" and the old master's role`);
    return ExitCode.unconfirmed;
  } finally {
    nodes.closeAll();
  }
}
