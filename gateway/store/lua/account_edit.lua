-- Create, change or delete a fal account of the gateway's pool.
--
-- A deleted account stays as a tombstone (its JSON with 'deleted_at'): never chosen, never
-- listed, but its key still serves the reads of the jobs it ran (results fal keeps) until their
-- records expire; its name is free again after that ('purge' drops it).
--
-- KEYS[1] accounts (name -> JSON)   KEYS[2] health   KEYS[3] jobs in flight per account
-- KEYS[4] mean job duration per account
-- ARGV[1] 'create', 'update', 'delete' or 'purge'   ARGV[2] account name
-- ARGV[3] the account (create) or the fields to change (update), JSON
-- ARGV[4] '1' when the change clears what fal's answers said of the account's health (a new
--         key, or the operator enabling it), else '0'
-- ARGV[5] seconds a deleted account keeps its name (create, purge; '0' for create: a
--         tombstone of any age is replaced)
--
-- Returns {'created'}, {'updated', account JSON}, {'deleted'}, {'missing'}, {'exists', when
-- the tombstone holding the name goes, s ('' for a live account)}, or {'busy', jobs in flight}
-- (an account is deleted only once no job holds a slot on it).

local name = ARGV[2]
local now = tonumber(redis.call('TIME')[1])
local current = redis.call('HGET', KEYS[1], name)
local account = current and cjson.decode(current) or nil
local deleted_at = account and tonumber(account.deleted_at) or nil
local keep = tonumber(ARGV[5]) or 0

if ARGV[1] == 'create' then
  if account and not deleted_at then return {'exists', ''} end
  if deleted_at and keep > 0 and deleted_at + keep > now then
    return {'exists', string.format('%d', deleted_at + keep)}
  end
  redis.call('HSET', KEYS[1], name, ARGV[3])
  redis.call('HDEL', KEYS[2], name)
  return {'created'}
end

if not account or (deleted_at and ARGV[1] ~= 'purge') then return {'missing'} end

if ARGV[1] == 'update' then
  for field, value in pairs(cjson.decode(ARGV[3])) do account[field] = value end
  local encoded = cjson.encode(account)
  redis.call('HSET', KEYS[1], name, encoded)
  if ARGV[4] == '1' then redis.call('HDEL', KEYS[2], name) end
  return {'updated', encoded}
elseif ARGV[1] == 'delete' then
  local in_flight = tonumber(redis.call('HGET', KEYS[3], name)) or 0
  if in_flight > 0 then return {'busy', in_flight} end
  account.deleted_at = now
  account.enabled = false
  redis.call('HSET', KEYS[1], name, cjson.encode(account))
  redis.call('HDEL', KEYS[2], name)
  redis.call('HDEL', KEYS[3], name)
  redis.call('HDEL', KEYS[4], name)
  return {'deleted'}
elseif ARGV[1] == 'purge' then
  if not deleted_at or deleted_at + keep > now then return {'missing'} end
  redis.call('HDEL', KEYS[1], name)
  return {'deleted'}
end
return redis.error_reply('unknown account edit ' .. ARGV[1])
