-- Claim teams due for reconciliation, for one pass of one process. A claimed team leaves the due
-- index, so concurrent passes (other replicas) get other teams, and an admission from now on adds
-- it to the due index afresh (its ZADD survives the pass's release, see reconciler.py).
--
-- KEYS[1] due index (team -> time t; due once t + reconcile_after has passed)
-- KEYS[2] claimed (team -> claim expiry, s)
-- ARGV[1] reconcile_after (s)   ARGV[2] claim lease (s)   ARGV[3] most teams to claim
--
-- Returns {now (s, from Redis's clock), team id, ...}.

local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local threshold = now - tonumber(ARGV[1])
local limit = tonumber(ARGV[3])

-- A claim whose lease ran out belongs to a pass that died (or overran): due again at once.
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, team in ipairs(lapsed) do
  redis.call('ZADD', KEYS[1], 'LT', threshold, team)
  redis.call('ZREM', KEYS[2], team)
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', threshold, 'LIMIT', 0, limit)
local reply = {string.format('%.6f', now)}
for _, team in ipairs(due) do
  redis.call('ZREM', KEYS[1], team)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), team)
  reply[#reply + 1] = team
end
return reply
