-- Create, change or delete a fal account of the gateway's pool.
--
-- KEYS[1] accounts (name -> JSON)   KEYS[2] health   KEYS[3] jobs in flight per account
-- KEYS[4] mean job duration per account
-- ARGV[1] 'create', 'update' or 'delete'   ARGV[2] account name
-- ARGV[3] the account (create) or the fields to change (update), JSON
-- ARGV[4] '1' when the change clears what fal's answers said of the account's health (a new
--         key, or the operator enabling it), else '0'
--
-- Returns {'created'}, {'updated', account JSON}, {'deleted'}, {'exists'}, {'missing'}, or
-- {'busy', jobs in flight} (an account is deleted only once no job holds a slot on it).

local name = ARGV[2]
if ARGV[1] == 'create' then
  if redis.call('HSETNX', KEYS[1], name, ARGV[3]) == 0 then return {'exists'} end
  redis.call('HDEL', KEYS[2], name)
  return {'created'}
end

local current = redis.call('HGET', KEYS[1], name)
if not current then return {'missing'} end

if ARGV[1] == 'update' then
  local account = cjson.decode(current)
  for field, value in pairs(cjson.decode(ARGV[3])) do account[field] = value end
  local encoded = cjson.encode(account)
  redis.call('HSET', KEYS[1], name, encoded)
  if ARGV[4] == '1' then redis.call('HDEL', KEYS[2], name) end
  return {'updated', encoded}
elseif ARGV[1] == 'delete' then
  local in_flight = tonumber(redis.call('HGET', KEYS[3], name)) or 0
  if in_flight > 0 then return {'busy', in_flight} end
  redis.call('HDEL', KEYS[1], name)
  redis.call('HDEL', KEYS[2], name)
  redis.call('HDEL', KEYS[3], name)
  redis.call('HDEL', KEYS[4], name)
  return {'deleted'}
end
return redis.error_reply('unknown account edit ' .. ARGV[1])
