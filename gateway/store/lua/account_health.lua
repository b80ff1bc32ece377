-- Change what fal's answers say of an account's health, only while the account still has the
-- key fal answered about (a key replaced meanwhile is judged afresh).
--
-- KEYS[1] accounts (name -> JSON, with the key's fingerprint 'fingerprint')   KEYS[2] health
-- ARGV[1] 'refused' (fal refused the key: the account is disabled until a probe or the
--         operator restores it), 'cooling' (fal answered 429: usable again at ARGV[4]) or
--         'restored' (a probe saw fal accept the key again)
-- ARGV[2] account name   ARGV[3] fingerprint of the key fal answered about
-- ARGV[4] reason (refused) or until, seconds since the epoch (cooling)
--
-- Returns {1} when the state changed, else {0}.

local account = redis.call('HGET', KEYS[1], ARGV[2])
if not account or cjson.decode(account).fingerprint ~= ARGV[3] then return {0} end
local now = tonumber(redis.call('TIME')[1])
local current = redis.call('HGET', KEYS[2], ARGV[2])
current = current and cjson.decode(current) or nil

if ARGV[1] == 'refused' then
  if current and current.state == 'refused' and current.reason == ARGV[4] then return {0} end
  redis.call('HSET', KEYS[2], ARGV[2],
    cjson.encode({state = 'refused', reason = ARGV[4], since = now}))
  return {1}
elseif ARGV[1] == 'cooling' then
  if current and (current.state == 'refused' or
      (current.state == 'cooling' and tonumber(current['until']) >= tonumber(ARGV[4]))) then
    return {0}
  end
  redis.call('HSET', KEYS[2], ARGV[2],
    cjson.encode({state = 'cooling', reason = 'fal answered 429', since = now,
      ['until'] = tonumber(ARGV[4])}))
  return {1}
elseif ARGV[1] == 'restored' then
  if not current or current.state ~= 'refused' then return {0} end
  redis.call('HDEL', KEYS[2], ARGV[2])
  return {1}
end
return redis.error_reply('unknown health change ' .. ARGV[1])
