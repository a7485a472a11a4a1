/**
 * The Redis Function library of routed fan-out (SPEC §9.2). `FCALL edgegateway_publish_v1 3
 * <history> <meta> <channel> <maxlen> <ttl_ms> <user_id> <device_session_id> <event_type>
 * <payload_base64>` appends the event to the user's history stream (trimmed to `maxlen`
 * entries), advances the user's offset, and publishes it on the user's sharded channel, in one
 * atomic step on the master of the user's partition. A new (or expired) meta hash gets a new
 * epoch, so a gateway that knew the old one tells its streams that continuity ended.
 * Reply: `[entry_id, offset, epoch]`.
 */
export const ROUTED_FUNCTION_LIBRARY = 'edgegateway';
export const ROUTED_PUBLISH_FUNCTION = 'edgegateway_publish_v1';

export const ROUTED_FUNCTION_SOURCE = `#!lua name=${ROUTED_FUNCTION_LIBRARY}
local function publish(keys, args)
  local maxlen = tonumber(args[1])
  local ttl = tonumber(args[2])
  if maxlen == nil or maxlen < 1 or ttl == nil or ttl < 1 then
    return redis.error_reply('ERR maxlen and ttl_ms must be positive integers')
  end
  if args[3] == '' or args[5] == '' then
    return redis.error_reply('ERR user_id and event_type are required')
  end
  local epoch = redis.call('HGET', keys[2], 'epoch')
  if not epoch then
    local now = redis.call('TIME')
    epoch = now[1] .. '-' .. now[2]
  end
  local offset = redis.call('HINCRBY', keys[2], 'offset', 1)
  local fields = {'user_id', args[3], 'device_session_id', args[4], 'event_type', args[5],
    'payload_base64', args[6], 'offset', tostring(offset), 'epoch', epoch}
  local id = redis.call('XADD', keys[1], 'MAXLEN', maxlen, '*', unpack(fields))
  redis.call('HSET', keys[2], 'epoch', epoch, 'last_id', id)
  redis.call('PEXPIRE', keys[1], ttl)
  redis.call('PEXPIRE', keys[2], ttl)
  redis.call('SPUBLISH', keys[3], cjson.encode({id = id, offset = offset, epoch = epoch,
    user_id = args[3], device_session_id = args[4], event_type = args[5], payload_base64 = args[6]}))
  return {id, offset, epoch}
end
redis.register_function('${ROUTED_PUBLISH_FUNCTION}', publish)
`;
