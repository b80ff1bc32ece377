-- Release teams a reconciler pass claimed (claim.lua): each goes back to the due index at its next
-- look, unless it has no open reservation left. ZADD LT keeps an earlier time an admission wrote
-- meanwhile; the team is never removed from the due index here, so that admission is not lost.
--
-- KEYS[1] due index   KEYS[2] claimed
-- ARGV pairs: team id, time of its next look ('' when it has no open reservation)
--
-- Returns {teams released}.

for i = 1, #ARGV, 2 do
  if ARGV[i + 1] ~= '' then
    redis.call('ZADD', KEYS[1], 'LT', ARGV[i + 1], ARGV[i])
  end
  redis.call('ZREM', KEYS[2], ARGV[i])
end
return {#ARGV / 2}
