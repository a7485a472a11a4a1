/**
 * Test helpers shared by the integration and system tests of edge-gateway:
 * free TCP ports, a real password-protected `redis-server` (or Redis Cluster) per test file,
 * raw RESP commands, and polling. Only Node built-ins are used.
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
