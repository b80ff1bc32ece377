-- Remember when the gateway first saw a job running (fal's IN_PROGRESS), for its history.
-- A later sighting, from any process, leaves the first one; a record that has expired stays gone.
--
-- KEYS[1] request record
--
-- Returns {1} when this call recorded it, else {0}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
local time = redis.call('TIME')
local now_ms = string.format('%d', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
return {redis.call('HSETNX', KEYS[1], 'started_ms', now_ms)}
