-- Finish a job, all at once: settle its reservation (the actual cost, or 0 for a refund),
-- remember fal's final status for later polls, and queue the caller's webhook. Any part already
-- done is left as it is, so every path that sees the job end may call this, in any order, any
-- number of times; a crash can never leave a job charged but not relayed, or the reverse.
--
-- KEYS[1] reservation     KEYS[2] team record     KEYS[3] key record
-- KEYS[4] key leases      KEYS[5] open reservations  KEYS[6] team spend by period
-- KEYS[7] ledger stream   KEYS[8] usage log stream   KEYS[9] request record (if bound)
-- KEYS[10] delivery       KEYS[11] the key's deliveries index
-- KEYS[12] the team's undelivered deliveries (delivery id -> deadline, s)
-- KEYS[13] the team's usage hash of the reservation's day: must be ARGV[7] .. that day, which
--          only the reservation knows; when it is not, nothing is written (see the reply)
-- ARGV[1] reservation id  ARGV[2] actual list-price cost (micros; -1: the estimate)  ARGV[3] images
-- ARGV[4] output pixels   ARGV[5] outcome   ARGV[6] request id ('' if never bound)
-- ARGV[7] prefix of the team's daily usage hashes, to check KEYS[13] by (never a key itself)
-- ARGV[8] final status, JSON ('': none to remember)
-- ARGV[9] caller's webhook URL ('': none; '*': the one the reservation holds)
-- ARGV[10] webhook body   ARGV[11] team id   ARGV[12] key id
-- ARGV[13] seconds a new delivery is kept (its retry schedule, then its retention); the key's
--          deliveries index drops entries older than that and expires that long after its newest
-- ARGV[14] seconds usage is kept (daily aggregates after their last write; usage log entries)
-- ARGV[15] seconds ledger entries are kept   ARGV[16] seconds the spend hash is kept
-- ARGV[17] seconds a new delivery may wait to be attempted before the reconciler queues it again
-- ARGV[18] '1' when the outcome counts as a failed job in the day's usage, else '0'
-- KEYS[14..17] and ARGV[19..24]: the team's alert deliveries (alert_delivery.lua)
-- ARGV[25] the ``traceparent`` a new delivery is attempted under ('': none)
-- ARGV[26..] more field/value pairs for the usage log entry (e.g. fal's billable units)
--
-- Returns {settlement, charged, delivery, overrun, alerts raised, alert deliveries}: settlement
-- "settled" (by this call), "already" or "missing" (the reservation expired); charged the actual
-- cost; delivery "new", "duplicate" or "none"; overrun what the actual cost exceeded the
-- reservation by; the alerts a settlement raised (team_alerts.lua). Or, having
-- written nothing, {"wrong_day", day} when KEYS[13] is not the usage hash of the reservation's
-- day: the caller runs it again with that day's key.
--
-- A new delivery is recorded here and listed in KEYS[12]; the caller queues it (the delivery
-- stream is in another slot). Should that never happen, the reconciler queues it once its
-- deadline in KEYS[12] has passed.
--
-- A job is never charged more than its reservation: admission checked the balance and every cap
-- against the reservation, so charging more could take them past their limits. The reservation
-- is an upper bound of the cost; an overrun (an input that changed between the gateway reading
-- its size and fal fetching it) is the reseller's loss, recorded in the usage log.

local function num(value) return tonumber(value) or 0 end
-- Lua 5.1 prints large numbers in exponent form; counters must be written as integers.
local function int(value) return string.format('%d', value) end

local time = redis.call('TIME')
local now = time[1]
local now_ms = string.format('%d', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
-- The oldest stream entry id (ms) to keep, for entries kept ``seconds``; streams are trimmed a
-- node at a time (``~``), which bounds the work of one call.
local function oldest(seconds)
  return string.format('%d', math.max(0, tonumber(now) - tonumber(seconds)) * 1000)
end
local bound = ARGV[6] ~= '' and redis.call('EXISTS', KEYS[9]) == 1

local settlement, charged, overrun = 'missing', 0, 0
local alerts = alert_sender({KEYS[14], KEYS[15], KEYS[16], KEYS[17]}, KEYS[12], 19)
local r = redis.call('HMGET', KEYS[1], 'state', 'key_id', 'endpoint', 'cost', 'multiplier_ppm',
  'day', 'month', 'actual', 'estimate', 'webhook_url', 'admitted_ms', 'price')
if r[1] == 'settled' then
  settlement, charged = 'already', num(r[8])
elseif r[1] then
  settlement = 'settled'
  local reserved = num(r[4])
  local list_cost = num(ARGV[2])
  if list_cost < 0 then list_cost = num(r[9]) end
  charged = math.ceil(list_cost * num(r[5]) / 1000000)
  if charged > reserved then
    overrun = charged - reserved
    charged = reserved
  end
  local key_id, endpoint, day = r[2], r[3], r[6]
  if KEYS[13] ~= ARGV[7] .. day then
    return {'wrong_day', day}
  end

  redis.call('HINCRBY', KEYS[2], 'reserved', int(-reserved))
  local balance = redis.call('HINCRBY', KEYS[2], 'balance', int(-charged))
  redis.call('HINCRBY', KEYS[3], 'reserved', int(-reserved))
  redis.call('HINCRBY', KEYS[3], 'spent', int(charged))
  local spent_day = redis.call('HINCRBY', KEYS[6], 'd:' .. day, int(charged - reserved))
  local spent_month = redis.call('HINCRBY', KEYS[6], 'm:' .. r[7], int(charged - reserved))
  redis.call('EXPIRE', KEYS[6], ARGV[16])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'settled', 'actual', int(charged), 'outcome', ARGV[5],
    'request_id', ARGV[6], 'settled_at', now)
  if bound then
    redis.call('HSET', KEYS[9], 'settled', '1', 'ended_ms', now_ms)
  end
  if charged ~= 0 then
    redis.call('XADD', KEYS[7], 'MINID', '~', oldest(ARGV[15]), '*', 'kind', 'usage',
      'amount_micros', int(-charged), 'balance_micros', balance, 'request_id', ARGV[6],
      'key_id', key_id, 'note', endpoint)
  end
  local entry = {KEYS[8], 'MINID', '~', oldest(ARGV[14]), '*', 'request_id', ARGV[6],
    'key_id', key_id, 'endpoint', endpoint, 'day', day, 'images', ARGV[3], 'pixels', ARGV[4],
    'cost_micros', int(charged), 'overrun_micros', int(overrun), 'outcome', ARGV[5],
    'admitted_ms', r[11] or '', 'list_cost_micros', int(list_cost),
    'price_version', string.match(r[12] or '', '^%d+') or ''}
  for i = 26, #ARGV do entry[#entry + 1] = ARGV[i] end
  redis.call('XADD', unpack(entry))
  local usage = KEYS[13]
  local field = key_id .. '|' .. endpoint .. '|'
  redis.call('HINCRBY', usage, field .. 'requests', 1)
  redis.call('HINCRBY', usage, field .. 'images', ARGV[3])
  redis.call('HINCRBY', usage, field .. 'pixels', ARGV[4])
  redis.call('HINCRBY', usage, field .. 'cost', int(charged))
  if ARGV[18] == '1' then
    redis.call('HINCRBY', usage, field .. 'failed', 1)
  end
  redis.call('EXPIRE', usage, ARGV[14])
  team_alerts(alerts, KEYS[2], ARGV[11], balance, {day, spent_day, r[7], spent_month})
end

-- A record that has expired stays gone (HSET alone would recreate it without an expiry).
if ARGV[8] ~= '' and bound and redis.call('HEXISTS', KEYS[9], 'final_status') == 0 then
  redis.call('HSET', KEYS[9], 'final_status', ARGV[8])
end

-- '*' stands for the URL on the reservation (the request record does not repeat it).
local url = ARGV[9]
if url == '*' then url = r[10] or '' end
local delivery = 'none'
if url ~= '' then
  if redis.call('EXISTS', KEYS[10]) == 1 then
    delivery = 'duplicate'
  else
    delivery = 'new'
    redis.call('HSET', KEYS[10], 'team_id', ARGV[11], 'key_id', ARGV[12],
      'request_id', ARGV[6], 'url', url, 'body', ARGV[10], 'status', 'pending',
      'attempts', 0, 'next_at', now, 'created', now, 'last_error', '', 'last_status', '')
    if ARGV[25] ~= '' then
      redis.call('HSET', KEYS[10], 'trace', ARGV[25])
    end
    redis.call('EXPIRE', KEYS[10], ARGV[13])
    redis.call('ZADD', KEYS[11], now, ARGV[6])
    redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', '(' .. (tonumber(now) - tonumber(ARGV[13])))
    redis.call('EXPIRE', KEYS[11], ARGV[13])
    redis.call('ZADD', KEYS[12], tonumber(now) + tonumber(ARGV[17]), ARGV[6])
    redis.call('EXPIRE', KEYS[12], ARGV[13])
  end
end
return {settlement, int(charged), delivery, int(overrun), alerts.raised, alerts.ids}
