-- Take back an admission made at a price found stale in the same round trip (the price table
-- changed just before it): the reservation, its lease, what it reserved and added to the
-- periods' spend, its place among open reservations, and the rate-limit slots it took, as if
-- it had not been made. The caller admits the request again at the current price.
--
-- KEYS: those of admit.lua (key record, team record, key rate, team rate, key leases,
--       reservation, open reservations, team spend by period)
-- ARGV[1] reservation id
--
-- Returns {1} when taken back, {0} when the reservation is not open (gone, or settled).

local r = redis.call('HMGET', KEYS[6], 'state', 'cost', 'day', 'month')
if r[1] ~= 'open' then
  return {0}
end
local cost = string.format('%d', -tonumber(r[2]))
redis.call('HINCRBY', KEYS[2], 'reserved', cost)
redis.call('HINCRBY', KEYS[1], 'reserved', cost)
redis.call('HINCRBY', KEYS[8], 'd:' .. r[3], cost)
redis.call('HINCRBY', KEYS[8], 'm:' .. r[4], cost)
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
redis.call('DEL', KEYS[6])

-- GCRA: the admission moved the theoretical arrival time one interval on; move it back.
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function give_back(rate_key, per_minute)
  per_minute = tonumber(per_minute) or 0
  local tat = tonumber(redis.call('GET', rate_key))
  if per_minute <= 0 or not tat then return end
  local earlier = tat - 60000 / per_minute
  if earlier > now_ms then
    redis.call('SET', rate_key, earlier, 'PX', math.ceil(earlier - now_ms))
  else
    redis.call('DEL', rate_key)
  end
end
give_back(KEYS[3], redis.call('HGET', KEYS[1], 'rate_per_minute'))
give_back(KEYS[4], redis.call('HGET', KEYS[2], 'rate_per_minute'))
return {1}
