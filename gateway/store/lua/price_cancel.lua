-- Cancel a scheduled price before it takes effect; a price in effect, or one that was, stays
-- (usage records name its version). The table's version moves on, so cached copies are stale.
--
-- KEYS[1] price table     KEYS[2] price table version
-- ARGV[1] version of the price
--
-- Returns {"cancelled"}, {"missing"} or {"in_effect"}.

local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then
  return {'missing'}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
if tonumber(cjson.decode(stored)['effective_at']) <= now then
  return {'in_effect'}
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
return {'cancelled'}
