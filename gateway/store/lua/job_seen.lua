-- Remember when the gateway first saw something of a job: fal reporting it running (its
-- history), or its caller asking to cancel it (its end is then a cancellation). A later sighting,
-- from any process, leaves the first one; a record that has expired stays gone.
--
-- KEYS[1] request record   KEYS[2..] other records of the job to note it on (its reservation)
-- ARGV[1] the records' field for it: 'started_ms' or 'cancel_ms'
--
-- Returns {1} when this call recorded it on the request record, else {0}.

local time = redis.call('TIME')
local now_ms = string.format('%d', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
local seen = 0
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local noted = redis.call('HSETNX', key, ARGV[1], now_ms)
    if i == 1 then seen = noted end
  end
end
return {seen}
