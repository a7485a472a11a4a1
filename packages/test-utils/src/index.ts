/**
 * Test helpers shared by the integration and system tests of edge-gateway:
 * free TCP ports, a real password-protected `redis-server` (or Redis Cluster) per test file,
 * raw RESP commands, and polling. Only Node built-ins are used.
 *
 * The system tests of the apps (gateway, CLI, dev) share three more entries, which drive the
 * built entry points of this repository as child processes:
 * `@edge-gateway/test-utils/gateway-process` (the binary, its logs, signer keys),
 * `@edge-gateway/test-utils/entry-process` (the CLI, `npm run dev` and `npm run demo` entries) and
 * `@edge-gateway/test-utils/system-support` (devices, sessions and events in Redis, an echo
 * downstream; this one needs the gRPC, Redis and client packages).
 */
export { freePort } from './free-port.js';
export { waitFor, type WaitForOptions } from './wait-for.js';
export {
  startRedisServer,
  type RedisServerHandle,
  type RedisServerOptions,
} from './redis-server.js';
export { redisCommand, RespError, type RespReply } from './resp-command.js';
export {
  cutReplica,
  killMasterAndPromote,
  parseClusterNodes,
  startRedisCluster,
  waitForReplication,
  type ClusterNodeInfo,
  type RedisClusterHandle,
  type RedisClusterOptions,
} from './redis-cluster.js';
export {
  startSentinelTopology,
  type SentinelHandle,
  type SentinelTopology,
  type SentinelTopologyOptions,
} from './redis-sentinel.js';
export { ManualTlsSource, makeTlsPair, servedTlsFingerprint, tlsFingerprint, type TestTlsPair } from './tls-pair.js';
