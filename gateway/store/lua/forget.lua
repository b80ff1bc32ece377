-- Forget entries that were copied elsewhere (the keys from before sharding, moved to their
-- shards), and delete the keys once nothing is left in any, in one step: an entry written
-- meanwhile (a process of the previous version still running) is neither dropped nor lost.
--
-- KEYS: streams or sorted sets, all of one slot
-- ARGV pairs: index of a key in KEYS, an entry id (stream) or a member (sorted set) to remove
--
-- Returns {entries left in all the keys}.

for i = 1, #ARGV, 2 do
  local key = KEYS[tonumber(ARGV[i])]
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'stream' then
    redis.call('XDEL', key, ARGV[i + 1])
  elseif kind == 'zset' then
    redis.call('ZREM', key, ARGV[i + 1])
  end
end
local left = 0
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'stream' then
    left = left + redis.call('XLEN', key)
  elseif kind == 'zset' then
    left = left + redis.call('ZCARD', key)
  end
end
if left == 0 then
  redis.call('DEL', unpack(KEYS))
end
return {left}
