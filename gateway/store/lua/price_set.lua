-- Add a price to the price table under a new version, which is also the table's new version:
-- every process's cached copy is then stale at its next admission.
--
-- KEYS[1] price table     KEYS[2] price table version
-- ARGV[1] the price, JSON: endpoint and terms, and ``effective_at`` (s) when it is scheduled;
--         without it, the price takes effect now by Redis's clock, which admissions check by
--
-- Returns {version, the entry as stored (JSON, with version, effective_at and created_at)}.

local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local entry = cjson.decode(ARGV[1])
local version = redis.call('INCR', KEYS[2])
entry['version'] = version
entry['created_at'] = now
if entry['effective_at'] == nil or entry['effective_at'] == cjson.null then
  entry['effective_at'] = now
end
local stored = cjson.encode(entry)
redis.call('HSET', KEYS[1], version, stored)
return {version, stored}
