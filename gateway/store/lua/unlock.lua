-- Release a lock only while its holder still has it: one that expired may have been taken by
-- another process since, and is not this holder's to delete.
--
-- KEYS[1] lock   ARGV[1] the holder's token
--
-- Returns {1} when released, {0} when the lock was no longer this holder's.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return {redis.call('DEL', KEYS[1])}
end
return {0}
