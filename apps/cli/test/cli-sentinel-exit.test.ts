import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSentinelTopology, type SentinelTopology } from '@edge-gateway/test-utils';
import { runCli } from '@edge-gateway/test-utils/entry-process';

/**
 * The Redis commands of the CLI end by themselves under Sentinel. They used to hang now and
 * then after finishing their work (4 of 12 `events publish` runs, one for 11 minutes, holding a
 * connection to the replica): a discovery poll still in flight when the command closed its
 * topology reconnected the clients close() had just destroyed. Each run here must exit on its
 * own well within the bound; a hang is killed and fails the test.
 */
let topology: SentinelTopology;

beforeAll(async () => {
  topology = await startSentinelTopology({ replicas: 2 });
}, 60_000);

afterAll(async () => {
  await topology?.stop();
});

const env = (): Record<string, string> => ({
  GATEWAY_REDIS_SENTINEL_ADDRS: topology.sentinelAddrs,
  GATEWAY_REDIS_SENTINEL_MASTER_NAME: topology.masterName,
  GATEWAY_REDIS_PASSWORD: topology.password,
});

describe('CLI Redis commands under Sentinel', () => {
  it('exit by themselves every time once their work is done', async () => {
    // One after the other: the bound is for a hang, not for a loaded machine starting 16 Nodes.
    for (let i = 0; i < 6; i++) {
      const publish = await runCli(['events', 'publish', '--user', `user-${i}`, '--type', 'note.created', '--payload', `n${i}`], env(), 30_000);
      expect({ run: i, code: publish.code, stderr: publish.stderr }).toEqual({ run: i, code: 0, stderr: '' });
      expect(publish.stdout).toContain(`for every stream of user user-${i}`);
      const show = await runCli(['sessions', 'show', `missing-${i}`], env(), 30_000);
      // null: killed at the bound (it hung).
      expect({ run: i, code: show.code }).toEqual({ run: i, code: 1 });
      expect(show.stdout + show.stderr).toContain(`missing-${i}`);
    }
  }, 400_000);
});
