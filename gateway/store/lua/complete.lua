-- Remember the status fal reported when a request finished, to answer later polls with it.
-- A record that has expired stays gone (HSET alone would recreate it without an expiry).
--
-- KEYS[1] request record   ARGV[1] the final status, JSON
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'final_status', ARGV[1])
return 1
