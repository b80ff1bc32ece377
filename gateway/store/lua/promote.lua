-- Move deliveries whose retry has fallen due from the retry schedule back onto the delivery
-- stream, where any worker takes them; all at once, so none is lost or doubled on the way.
--
-- KEYS[1] retry schedule (ZSET "<team id> <delivery id>" -> due time, ms)
-- KEYS[2] delivery stream
-- ARGV[1] most to move
--
-- Returns {how many were moved}.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local space = string.find(member, ' ', 1, true)
  if space then
    redis.call('XADD', KEYS[2], '*', 'team_id', string.sub(member, 1, space - 1),
      'delivery_id', string.sub(member, space + 1))
  end
  redis.call('ZREM', KEYS[1], member)
end
return {#due}
