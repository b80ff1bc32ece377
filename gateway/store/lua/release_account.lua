-- Give back the slot a job held on its fal account (pick_account.lua took it), once; and keep
-- the account's mean job duration, which estimates when a full account frees a slot.
--
-- KEYS[1] jobs in flight per account   KEYS[2] slots held ('name|reservation' -> lapse time, ms)
-- KEYS[3] mean job duration per account (ms)
-- ARGV[1] account name   ARGV[2] reservation id   ARGV[3] seconds a slot is held at most
--
-- Returns {1} when the slot was held, else {0} (released already, or lapsed).

local member = ARGV[1] .. '|' .. ARGV[2]
local lapses = redis.call('ZSCORE', KEYS[2], member)
if not lapses then return {0} end
redis.call('ZREM', KEYS[2], member)
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) < 0 then
  redis.call('HSET', KEYS[1], ARGV[1], 0)
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local took = math.max(0, now - (tonumber(lapses) - tonumber(ARGV[3]) * 1000))
local mean = tonumber(redis.call('HGET', KEYS[3], ARGV[1]))
if mean then took = mean * 0.8 + took * 0.2 end
redis.call('HSET', KEYS[3], ARGV[1], string.format('%d', took))
return {1}
