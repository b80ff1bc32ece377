-- Settle one reservation, once: the reserved credit becomes the actual cost (0 for a refund),
-- the lease is released, the ledger and usage are written. Settling again changes nothing.
--
-- KEYS[1] reservation     KEYS[2] team record     KEYS[3] key record
-- KEYS[4] key leases      KEYS[5] open reservations  KEYS[6] team spend by period
-- KEYS[7] ledger stream   KEYS[8] usage log stream   KEYS[9] request record (if bound)
-- ARGV[1] reservation id  ARGV[2] actual list-price cost (micros; -1: the estimate)  ARGV[3] images
-- ARGV[4] output pixels   ARGV[5] outcome   ARGV[6] request id
-- ARGV[7] prefix of the team's daily usage hashes (same hash tag)
--
-- Returns {"settled", actual cost}, {"already", actual cost} or {"missing"}.

local function num(value) return tonumber(value) or 0 end
local function int(value) return string.format('%d', value) end

local r = redis.call('HMGET', KEYS[1], 'state', 'key_id', 'endpoint', 'cost', 'multiplier_ppm',
  'day', 'month', 'actual', 'estimate')
if not r[1] then return {'missing'} end
if r[1] == 'settled' then return {'already', num(r[8])} end

local now_parts = redis.call('TIME')
local reserved = num(r[4])
local list_cost = num(ARGV[2])
if list_cost < 0 then list_cost = num(r[9]) end
local actual = math.ceil(list_cost * num(r[5]) / 1000000)
local key_id, endpoint, day = r[2], r[3], r[6]

redis.call('HINCRBY', KEYS[2], 'reserved', int(-reserved))
local balance = redis.call('HINCRBY', KEYS[2], 'balance', int(-actual))
redis.call('HINCRBY', KEYS[3], 'reserved', int(-reserved))
redis.call('HINCRBY', KEYS[3], 'spent', int(actual))
redis.call('HINCRBY', KEYS[6], 'd:' .. day, int(actual - reserved))
redis.call('HINCRBY', KEYS[6], 'm:' .. r[7], int(actual - reserved))
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'settled', 'actual', int(actual), 'outcome', ARGV[5],
  'request_id', ARGV[6], 'settled_at', now_parts[1])
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[9]) == 1 then
  redis.call('HSET', KEYS[9], 'settled', '1')
end

if actual ~= 0 then
  redis.call('XADD', KEYS[7], '*', 'kind', 'usage', 'amount_micros', int(-actual),
    'balance_micros', balance, 'request_id', ARGV[6], 'key_id', key_id, 'note', endpoint)
end
redis.call('XADD', KEYS[8], '*', 'request_id', ARGV[6], 'key_id', key_id, 'endpoint', endpoint,
  'day', day, 'images', ARGV[3], 'pixels', ARGV[4], 'cost_micros', int(actual),
  'outcome', ARGV[5])
local usage = ARGV[7] .. day
local field = key_id .. '|' .. endpoint .. '|'
redis.call('HINCRBY', usage, field .. 'requests', 1)
redis.call('HINCRBY', usage, field .. 'images', ARGV[3])
redis.call('HINCRBY', usage, field .. 'pixels', ARGV[4])
redis.call('HINCRBY', usage, field .. 'cost', int(actual))
return {'settled', int(actual)}
