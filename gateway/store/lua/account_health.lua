-- Change what fal's answers say of an account's health, only while the account still has the
-- key fal answered about (a key replaced meanwhile is judged afresh).
--
-- KEYS[1] accounts (name -> JSON, with the key's fingerprint 'fingerprint')   KEYS[2] health
-- ARGV[1] 'refused' (fal refused the key: the account is disabled until a probe or the
--         operator restores it), 'cooling' (fal answered 429: usable again at ARGV[4]) or
--         'restored' (a probe saw fal accept the key again)
-- ARGV[2] account name   ARGV[3] fingerprint of the key fal answered about
-- ARGV[4] reason (refused) or until, seconds since the epoch (cooling)
-- KEYS[3] the pool's undelivered alert deliveries, KEYS[4] and ARGV[5..10]: its alert delivery
-- (alert_delivery.lua): ``upstream.disabled`` when fal refused a key it had not refused so,
-- ``upstream.failing`` when a cooling starts (not when a 429 extends one)
--
-- Returns {1, alerts raised, alert deliveries} when the state changed, else {0, ...}.

local alerts = alert_sender({KEYS[4]}, KEYS[3], 5)
local name = ARGV[2]
local function done(changed) return {changed, alerts.raised, alerts.ids} end
local account = redis.call('HGET', KEYS[1], name)
if not account or cjson.decode(account).fingerprint ~= ARGV[3] then return done(0) end
local now = tonumber(redis.call('TIME')[1])
local current = redis.call('HGET', KEYS[2], name)
current = current and cjson.decode(current) or nil

if ARGV[1] == 'refused' then
  if current and current.state == 'refused' and current.reason == ARGV[4] then return done(0) end
  redis.call('HSET', KEYS[2], name,
    cjson.encode({state = 'refused', reason = ARGV[4], since = now}))
  if not current or current.state ~= 'refused' then
    alerts.send('upstream.disabled', alert_body('upstream.disabled', alerts.time,
      {'account', name, 'reason', ARGV[4]},
      'fal account ' .. name .. ' is disabled: fal refused its key (' .. ARGV[4] .. ')'))
  end
  return done(1)
elseif ARGV[1] == 'cooling' then
  if current and (current.state == 'refused' or
      (current.state == 'cooling' and tonumber(current['until']) >= tonumber(ARGV[4]))) then
    return done(0)
  end
  redis.call('HSET', KEYS[2], name,
    cjson.encode({state = 'cooling', reason = 'fal answered 429', since = now,
      ['until'] = tonumber(ARGV[4])}))
  if not current or tonumber(current['until'] or 0) <= now then
    alerts.send('upstream.failing', alert_body('upstream.failing', alerts.time,
      {'account', name, 'reason', 'fal answered 429', 'until', tonumber(ARGV[4])},
      'fal account ' .. name .. ' is cooling down: fal answered 429'))
  end
  return done(1)
elseif ARGV[1] == 'restored' then
  if not current or current.state ~= 'refused' then return done(0) end
  redis.call('HDEL', KEYS[2], name)
  return done(1)
end
return redis.error_reply('unknown health change ' .. ARGV[1])
