import { crc16 } from './cluster-slot.js';
import { ROUTED_PARTITIONS, partitionTag } from './routed-keys.js';

/**
 * The Redis Function library of routed fan-out (SPEC §9.2), library `edgegateway`:
 *
 * `FCALL edgegateway_publish_v2 3 <history> <meta> <channel> <maxlen> <ttl_ms> <max_event_bytes>
 * <user_id> <device_session_id> <event_type> <payload_base64>` appends the event to the user's
 * history stream (trimmed to `maxlen` entries), advances the user's offset, and publishes it on
 * the user's sharded channel, in one atomic step on the master of the user's partition.
 * Reply: `[entry_id, offset, epoch]`.
 *
 * The function trusts no argument: before its first write it checks that the three keys are the
 * ones derived from `user_id` (any key prefix without `{`, the partition tag of §9.1), every field
 * against §5.4, `max_event_bytes` against {@link ROUTED_MAX_EVENT_BYTES_LIMIT} and the decoded
 * payload against `max_event_bytes`, and that `maxlen` and `ttl_ms` are decimal integers from 1
 * to 999999999999999. A refusal writes nothing and is the error `ERR invalid <argument>: <reason>`.
 *
 * Epochs: a missing meta hash starts a new epoch. So does a meta hash last written by another
 * node (`writer`, the node id of `CLUSTER MYID`): the partition's master changed since, and the
 * old master may have delivered events this one never got. That epoch records the position it
 * continues (`prev_epoch`, `prev_offset`, `prev_last_id`, on the meta hash, on its first entry
 * and in its first message), so a gateway that had delivered exactly up to there goes on
 * seamlessly and one that had delivered more tells its streams (SPEC §9.3).
 *
 * `edgegateway_publish_v1` (without `max_event_bytes`) stays for callers of the first version:
 * the same checks and epochs, with {@link ROUTED_MAX_EVENT_BYTES_LIMIT} as the payload bound.
 */
export const ROUTED_FUNCTION_LIBRARY = 'edgegateway';
export const ROUTED_PUBLISH_FUNCTION = 'edgegateway_publish_v2';
/** The first version's name (no `max_event_bytes` argument); kept loaded for older callers. */
export const ROUTED_PUBLISH_FUNCTION_V1 = 'edgegateway_publish_v1';

/**
 * The largest `max_event_bytes` the publish function accepts (16 MiB), and so the largest
 * `GATEWAY_PUSH_MAX_EVENT_BYTES` of routed mode: whatever a caller passes, no history entry holds
 * a larger payload.
 */
export const ROUTED_MAX_EVENT_BYTES_LIMIT = 16 * 1024 * 1024;

/** Largest `maxlen` and `ttl_ms`: 15 decimal digits, well inside Redis's 64-bit integers. */
export const ROUTED_MAX_INTEGER_ARGUMENT = 999_999_999_999_999;

/** The argument names a refusal of the publish function names (`ERR invalid <name>: …`). */
export const ROUTED_PUBLISH_ARGUMENTS = [
  'arguments',
  'keys',
  'maxlen',
  'ttl_ms',
  'max_event_bytes',
  'user_id',
  'device_session_id',
  'event_type',
  'payload_base64',
] as const;

/** True for a Redis error text that is a refusal of the publish function (nothing was written). */
export function isRoutedPublishRefusal(message: string): boolean {
  return new RegExp(`(^|: )ERR invalid (${ROUTED_PUBLISH_ARGUMENTS.join('|')}): `).test(message);
}

// With initial value 0, the CRC of one byte is its table entry.
const crcTable = Array.from({ length: 256 }, (_, byte) => crc16(Uint8Array.of(byte))).join(',');
const tags = Array.from({ length: ROUTED_PARTITIONS }, (_, p) => `'${partitionTag(p)}'`).join(',');

export const ROUTED_FUNCTION_SOURCE = `#!lua name=${ROUTED_FUNCTION_LIBRARY}
-- SPEC 9.2. Everything is checked before the first write; a refusal writes nothing.
local TAGS = {${tags}}
local PARTITIONS = ${ROUTED_PARTITIONS}
local MAX_EVENT_BYTES_LIMIT = ${ROUTED_MAX_EVENT_BYTES_LIMIT}

-- CRC16-XMODEM table (index byte + 1); the bit library is not available while a library loads.
local CRC = {${crcTable}}

-- CRC16-XMODEM, as Redis Cluster hashes keys (SPEC 9.1).
local function crc16(s)
  local crc = 0
  for i = 1, #s do
    crc = bit.band(bit.bxor(bit.lshift(crc, 8), CRC[bit.band(bit.bxor(bit.rshift(crc, 8), string.byte(s, i)), 0xff) + 1]), 0xffff)
  end
  return crc
end

local function refuse(name, reason)
  return redis.error_reply('ERR invalid ' .. name .. ': ' .. reason)
end

-- A decimal integer 1..999999999999999: no sign, exponent, fraction or leading zero.
local function positive_integer(s)
  return #s <= 15 and string.find(s, '^[1-9][0-9]*$') ~= nil
end

local function continuation(b)
  return b ~= nil and b >= 0x80 and b <= 0xBF
end

-- Length in UTF-16 code units (as JavaScript counts a string), or nil when s is not valid UTF-8
-- (overlong forms, surrogates and code points above U+10FFFF are invalid).
local function utf16_length(s)
  local n, i, len = 0, 1, #s
  while i <= len do
    local c = string.byte(s, i)
    if c < 0x80 then
      i = i + 1
      n = n + 1
    elseif c >= 0xC2 and c <= 0xDF then
      if not continuation(string.byte(s, i + 1)) then return nil end
      i = i + 2
      n = n + 1
    elseif c >= 0xE0 and c <= 0xEF then
      local c2, c3 = string.byte(s, i + 1, i + 2)
      local lo, hi = 0x80, 0xBF
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
      if c2 == nil or c2 < lo or c2 > hi or not continuation(c3) then return nil end
      i = i + 3
      n = n + 1
    elseif c >= 0xF0 and c <= 0xF4 then
      local c2, c3, c4 = string.byte(s, i + 1, i + 3)
      local lo, hi = 0x80, 0xBF
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
      if c2 == nil or c2 < lo or c2 > hi or not continuation(c3) or not continuation(c4) then return nil end
      i = i + 4
      n = n + 2
    else
      return nil
    end
  end
  return n
end

-- SPEC 5.1: 1-256 characters (UTF-16 code units of valid UTF-8), no control characters.
-- 256 code units take at most 768 bytes, so longer input is refused before it is scanned.
local function valid_user_id(s)
  if #s == 0 or #s > 768 or string.find(s, '[%z\\1-\\31\\127]') then return false end
  local n = utf16_length(s)
  return n ~= nil and n <= 256
end

-- Decoded bytes of standard padded base64, or nil when s is not that; max bounds it before the scan.
local function base64_length(s, max)
  local n = #s
  if n % 4 ~= 0 then return nil, 'is not standard base64' end
  local pad = 0
  if n > 0 and string.byte(s, n) == 61 then pad = (string.byte(s, n - 1) == 61) and 2 or 1 end
  local bytes = n / 4 * 3 - pad
  if bytes > max then return nil, 'decodes to more than max_event_bytes (' .. max .. ')' end
  -- One anchored match (the longest run of alphabet characters), not a search from every position.
  local _, run = string.find(s, '^[A-Za-z0-9+/]*')
  if run ~= n - pad then return nil, 'is not standard base64' end
  return bytes
end

-- This node's id, read once per library load: it does not change while the server runs.
local node = nil
local function node_id()
  if node == nil then
    local id = redis.pcall('CLUSTER', 'MYID')
    if type(id) == 'string' then
      node = id
    else
      -- Not a cluster node: the process's run id (changes on restart).
      node = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or ''
    end
  end
  return node
end

local function new_epoch()
  local now = redis.call('TIME')
  return now[1] .. '-' .. now[2]
end

local function publish(keys, args, max_event_bytes_arg, first)
  local maxlen, ttl = args[1], args[2]
  local user_id, session, event_type, payload = args[first], args[first + 1], args[first + 2], args[first + 3]
  if not positive_integer(maxlen) then return refuse('maxlen', 'must be a decimal integer from 1 to 999999999999999') end
  if not positive_integer(ttl) then return refuse('ttl_ms', 'must be a decimal integer from 1 to 999999999999999') end
  local max_bytes = MAX_EVENT_BYTES_LIMIT
  if max_event_bytes_arg ~= nil then
    if not (max_event_bytes_arg == '0' or (#max_event_bytes_arg <= 9 and string.find(max_event_bytes_arg, '^[1-9][0-9]*$')))
      or tonumber(max_event_bytes_arg) > MAX_EVENT_BYTES_LIMIT then
      return refuse('max_event_bytes', 'must be a decimal integer from 0 to ' .. MAX_EVENT_BYTES_LIMIT)
    end
    max_bytes = tonumber(max_event_bytes_arg)
  end
  if not valid_user_id(user_id) then
    return refuse('user_id', 'must be 1-256 characters (UTF-16 code units of valid UTF-8) without control characters')
  end
  if session ~= '' and (#session > 128 or not string.find(session, '^[A-Za-z0-9%._:%-]+$')) then
    return refuse('device_session_id', 'must be empty or 1-128 characters of [A-Za-z0-9._:-]')
  end
  if #event_type > 128 or not string.find(event_type, '^[a-z][a-z0-9%._%-]*$') then
    return refuse('event_type', 'must be 1-128 characters of [a-z0-9._-] starting with a letter')
  end
  if string.sub(event_type, 1, 8) == 'gateway.' then return refuse('event_type', 'uses the reserved gateway. prefix') end
  local _, payload_problem = base64_length(payload, max_bytes)
  if payload_problem ~= nil then return refuse('payload_base64', payload_problem) end
  -- The keys are the user's (SPEC 9.1, 9.2): <prefix>push:{<tag>}:h|m|c:<user_id>.
  local tag = TAGS[crc16(user_id) % PARTITIONS + 1]
  local tail = 'push:{' .. tag .. '}:'
  local history_suffix = tail .. 'h:' .. user_id
  local history = keys[1]
  if #history < #history_suffix or string.sub(history, -#history_suffix) ~= history_suffix then
    return refuse('keys', 'the history key is not <prefix>' .. history_suffix .. ' (the keys must be those of user_id)')
  end
  local prefix = string.sub(history, 1, #history - #history_suffix)
  if string.find(prefix, '{', 1, true) then return refuse('keys', 'the key prefix must not contain {') end
  if keys[2] ~= prefix .. tail .. 'm:' .. user_id then return refuse('keys', 'the meta key is not the history key\\'s with :m:') end
  if keys[3] ~= prefix .. tail .. 'c:' .. user_id then return refuse('keys', 'the channel is not the history key\\'s with :c:') end

  local meta = redis.call('HMGET', keys[2], 'epoch', 'offset', 'last_id', 'writer')
  local me = node_id()
  local epoch, offset = meta[1], tonumber(meta[2])
  local prev = nil
  if not epoch or offset == nil then
    epoch, offset = new_epoch(), 0
  elseif meta[4] and meta[4] ~= me then
    -- Another node wrote this history last: the master changed (failover). A new epoch that
    -- continues this position (a meta hash of the first version has no writer: adopted).
    prev = {epoch, meta[2], meta[3] or '0-0'}
    epoch, offset = new_epoch(), 0
  end
  offset = offset + 1
  local fields = {'user_id', user_id, 'device_session_id', session, 'event_type', event_type,
    'payload_base64', payload, 'offset', tostring(offset), 'epoch', epoch}
  local state = {'epoch', epoch, 'offset', tostring(offset), 'writer', me}
  if prev then
    for _, list in ipairs({fields, state}) do
      table.insert(list, 'prev_epoch'); table.insert(list, prev[1])
      table.insert(list, 'prev_offset'); table.insert(list, prev[2])
      table.insert(list, 'prev_last_id'); table.insert(list, prev[3])
    end
  end
  local id = redis.call('XADD', keys[1], 'MAXLEN', maxlen, '*', unpack(fields))
  table.insert(state, 'last_id'); table.insert(state, id)
  redis.call('HSET', keys[2], unpack(state))
  redis.call('PEXPIRE', keys[1], ttl)
  redis.call('PEXPIRE', keys[2], ttl)
  local message = {id = id, offset = offset, epoch = epoch, user_id = user_id, device_session_id = session,
    event_type = event_type, payload_base64 = payload}
  if prev then
    message.prev_epoch, message.prev_offset, message.prev_last_id = prev[1], tonumber(prev[2]), prev[3]
  end
  redis.call('SPUBLISH', keys[3], cjson.encode(message))
  return {id, offset, epoch}
end

redis.register_function('${ROUTED_PUBLISH_FUNCTION}', function(keys, args)
  if #keys ~= 3 or #args ~= 7 then
    return refuse('arguments', 'expected 3 keys (history, meta, channel) and 7 arguments (maxlen, ttl_ms, max_event_bytes, user_id, device_session_id, event_type, payload_base64)')
  end
  return publish(keys, args, args[3], 4)
end)

redis.register_function('${ROUTED_PUBLISH_FUNCTION_V1}', function(keys, args)
  if #keys ~= 3 or #args ~= 6 then
    return refuse('arguments', 'expected 3 keys (history, meta, channel) and 6 arguments (maxlen, ttl_ms, user_id, device_session_id, event_type, payload_base64)')
  end
  return publish(keys, args, nil, 3)
end)
`;
