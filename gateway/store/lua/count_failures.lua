-- Add failed calls to fal to each account's counts: the day's (for the console) and the
-- current alert window's; an account whose calls in one window reach ARGV[8] raises
-- ``upstream.failing`` once in that window (windows start at multiples of ARGV[9] seconds).
--
-- KEYS[1] the day's failed calls (account -> count)   KEYS[2] the alert window's counts
-- KEYS[3] the pool's undelivered alert deliveries
-- KEYS[4..] one alert delivery per account counted, and ARGV[1..6] (alert_delivery.lua)
-- ARGV[7] seconds the day's counts are kept   ARGV[8] failed calls that raise an alert (0: none)
-- ARGV[9] the alert window (s)   ARGV[10..] account name, failed calls, ...
--
-- Returns {alerts raised, alert deliveries}.

local slots = {}
for i = 4, #KEYS do slots[#slots + 1] = KEYS[i] end
local alerts = alert_sender(slots, KEYS[3], 1)
local threshold, window = tonumber(ARGV[8]), tonumber(ARGV[9])
local now = tonumber(redis.call('TIME')[1])
local start = string.format('%d', now - now % window)

for i = 10, #ARGV, 2 do
  local name, failed = ARGV[i], tonumber(ARGV[i + 1])
  redis.call('HINCRBY', KEYS[1], name, failed)
  if threshold > 0 then
    local before = 0
    if redis.call('HGET', KEYS[2], name .. '|start') == start then
      before = tonumber(redis.call('HGET', KEYS[2], name)) or 0
    end
    local after = before + failed
    redis.call('HSET', KEYS[2], name, after, name .. '|start', start)
    if before < threshold and after >= threshold then
      alerts.send('upstream.failing', alert_body('upstream.failing', alerts.time,
        {'account', name, 'reason', 'failed calls', 'failed_calls', after,
          'window_seconds', window},
        'fal account ' .. name .. ': ' .. after .. ' calls to fal failed within ' .. window ..
        ' s'))
    end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[7])
if threshold > 0 then redis.call('EXPIRE', KEYS[2], math.ceil(2 * window)) end
return {alerts.raised, alerts.ids}
