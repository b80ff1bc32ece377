-- Admit one submit, atomically: key valid, policy versions current, rate limits (GCRA, per key
-- and per team), a concurrency lease, and a credit reservation within every cap.
--
-- KEYS[1] key record      KEYS[2] team record     KEYS[3] key rate (TAT, ms)
-- KEYS[4] team rate       KEYS[5] key leases      KEYS[6] reservation
-- KEYS[7] open reservations                        KEYS[8] team spend by period
-- ARGV[1] secret hash     ARGV[2] list-price estimate (micros)   ARGV[3] reservation id
-- ARGV[4] lease ttl (s)   ARGV[5] reservation ttl (s)
-- ARGV[6] key policy version seen   ARGV[7] team policy version seen
-- ARGV[8] endpoint id     ARGV[9] key id
-- ARGV[10] seconds the reservation may stay without a fal request id (a sync run: fal names
--          the request only when it answers), on top of the reconciler's bind grace
-- ARGV[11] seconds the spend hash is kept after its last write, and the age of the periods it
--          drops once it has more than ARGV[12] fields (no cap reads them any more)
--
-- Returns {"ok", cost, key rate limit, key rate remaining, key rate reset ms, the team's spend
--          today and this month with this cost, its daily and monthly caps (0: none)}
--      or {"refused", reason, retry after ms (0: none), detail number}.

local now_parts = redis.call('TIME')
local now_ms = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local now_s = tonumber(now_parts[1])

local function num(value) return tonumber(value) or 0 end
-- Lua 5.1 prints large numbers in exponent form; counters must be written as integers.
local function int(value) return string.format('%d', value) end

local key = redis.call('HMGET', KEYS[1], 'secret_hash', 'status', 'expires_at', 'spent',
  'reserved', 'spend_cap', 'max_concurrent', 'rate_per_minute', 'rate_burst', 'policy_version')
if not key[1] or key[1] ~= ARGV[1] or key[2] ~= 'active' then
  return {'refused', 'invalid_key', 0, 0}
end
if key[3] and key[3] ~= '' and tonumber(key[3]) * 1000 <= now_ms then
  return {'refused', 'invalid_key', 0, 0}
end
local team = redis.call('HMGET', KEYS[2], 'balance', 'reserved', 'multiplier_ppm', 'daily_cap',
  'monthly_cap', 'rate_per_minute', 'rate_burst', 'policy_version')
if not team[3] then
  return {'refused', 'no_team', 0, 0}
end
if num(key[10]) ~= tonumber(ARGV[6]) or num(team[8]) ~= tonumber(ARGV[7]) then
  return {'refused', 'stale_policy', 0, 0}
end

-- GCRA: a request is allowed while the theoretical arrival time is within burst * interval.
local function gcra(rate_key, per_minute, burst)
  if per_minute <= 0 then return true, nil end
  local interval = 60000 / per_minute
  local tolerance = interval * math.max(burst, 1)
  local tat = math.max(num(redis.call('GET', rate_key)), now_ms)
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if now_ms < allow_at then
    return false, {allow_at - now_ms}
  end
  return true, {rate_key, new_tat, interval, tolerance}
end

local key_ok, key_rate = gcra(KEYS[3], num(key[8]), num(key[9]))
if not key_ok then return {'refused', 'rate_key', math.ceil(key_rate[1]), num(key[8])} end
local team_ok, team_rate = gcra(KEYS[4], num(team[6]), num(team[7]))
if not team_ok then return {'refused', 'rate_team', math.ceil(team_rate[1]), num(team[6])} end

-- Leases of jobs nobody settled expire; then count what is in flight.
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now_ms)
local max_concurrent = num(key[7])
if max_concurrent > 0 and redis.call('ZCARD', KEYS[5]) >= max_concurrent then
  return {'refused', 'concurrency', 0, max_concurrent}
end

-- Civil date (UTC) from days since the epoch (Howard Hinnant's algorithm).
local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end
local y, m, d = civil(math.floor(now_s / 86400))
local day = string.format('%04d-%02d-%02d', y, m, d)
local month = string.format('%04d-%02d', y, m)

local cost = math.ceil(tonumber(ARGV[2]) * num(team[3]) / 1000000)
local available = num(team[1]) - num(team[2])
if cost > available then
  return {'refused', 'insufficient_credit', 0, available}
end
local spend_cap = num(key[6])
if spend_cap > 0 and num(key[4]) + num(key[5]) + cost > spend_cap then
  return {'refused', 'key_spend_cap', 0, spend_cap}
end
local spent_day = num(redis.call('HGET', KEYS[8], 'd:' .. day))
local daily_cap = num(team[4])
if daily_cap > 0 and spent_day + cost > daily_cap then
  return {'refused', 'daily_cap', 0, daily_cap}
end
local spent_month = num(redis.call('HGET', KEYS[8], 'm:' .. month))
local monthly_cap = num(team[5])
if monthly_cap > 0 and spent_month + cost > monthly_cap then
  return {'refused', 'monthly_cap', 0, monthly_cap}
end

-- Everything allowed: commit.
local remaining, reset = -1, 0
if key_rate then
  redis.call('SET', key_rate[1], key_rate[2], 'PX', math.ceil(key_rate[2] - now_ms))
  remaining = math.floor((now_ms + key_rate[4] - key_rate[2]) / key_rate[3])
  reset = math.ceil(key_rate[2] - now_ms)
end
if team_rate then
  redis.call('SET', team_rate[1], team_rate[2], 'PX', math.ceil(team_rate[2] - now_ms))
end
redis.call('ZADD', KEYS[5], now_ms + tonumber(ARGV[4]) * 1000, ARGV[3])
redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[4]) * 1000)
redis.call('HINCRBY', KEYS[2], 'reserved', int(cost))
redis.call('HINCRBY', KEYS[1], 'reserved', int(cost))
redis.call('HINCRBY', KEYS[8], 'd:' .. day, int(cost))
redis.call('HINCRBY', KEYS[8], 'm:' .. month, int(cost))
redis.call('EXPIRE', KEYS[8], ARGV[11])
if redis.call('HLEN', KEYS[8]) > tonumber(ARGV[12]) then
  local cy, cm, cd = civil(math.floor(now_s / 86400) - math.floor(tonumber(ARGV[11]) / 86400))
  local first_day = string.format('d:%04d-%02d-%02d', cy, cm, cd)
  local first_month = string.format('m:%04d-%02d', cy, cm)
  for _, period in ipairs(redis.call('HKEYS', KEYS[8])) do
    local kind = string.sub(period, 1, 2)
    if (kind == 'd:' and period < first_day) or (kind == 'm:' and period < first_month) then
      redis.call('HDEL', KEYS[8], period)
    end
  end
end
redis.call('HSET', KEYS[6], 'key_id', ARGV[9], 'endpoint', ARGV[8], 'estimate', ARGV[2],
  'cost', int(cost), 'multiplier_ppm', team[3], 'day', day, 'month', month, 'created', now_s,
  'admitted_ms', int(now_ms),
  'unbound_until', now_s + num(ARGV[10]), 'state', 'open')
redis.call('EXPIRE', KEYS[6], tonumber(ARGV[5]))
redis.call('ZADD', KEYS[7], now_s, ARGV[3])
return {'ok', int(cost), num(key[8]), remaining, reset, int(spent_day + cost), int(daily_cap),
  int(spent_month + cost), int(monthly_cap)}
