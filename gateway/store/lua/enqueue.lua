-- Record a delivery once per request: a duplicate of fal's webhook finds it already there.
-- KEYS[1] delivery   KEYS[2] the key's deliveries index
-- ARGV[1] delivery id   ARGV[2] team id   ARGV[3] key id   ARGV[4] request id
-- ARGV[5] target URL    ARGV[6] body
-- Returns {"new"} or {"duplicate", status, attempts}.
local existing = redis.call('HMGET', KEYS[1], 'status', 'attempts')
if existing[1] then
  return {'duplicate', existing[1], existing[2]}
end
local now = redis.call('TIME')[1]
redis.call('HSET', KEYS[1], 'team_id', ARGV[2], 'key_id', ARGV[3], 'request_id', ARGV[4],
  'url', ARGV[5], 'body', ARGV[6], 'status', 'pending', 'attempts', 0, 'next_at', now,
  'created', now, 'last_error', '', 'last_status', '')
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {'new'}
