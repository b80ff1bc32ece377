-- Prepended to every script that raises alerts (``scripts.PRELUDES``): records an alert's
-- deliveries as finish.lua records a caller's webhook, a delivery record and its entry in its
-- owner's undelivered set, in the script that saw what the alert reports. The caller queues
-- them; should that be lost, the reconciler queues them from the undelivered set.
--
-- ``alert_sender(slots, undelivered, at)`` reads six ARGV from index ``at``: the owner (team id,
-- or ``redis_keys.UPSTREAM_ALERTS``), the prefix of the deliveries' ids (the n-th is
-- ``<prefix>-<n>``, its key ``slots[n]``), the operator's alert URL ('': none), the time as RFC
-- 3339, seconds a delivery is kept, and seconds it may wait before the reconciler queues it.
-- ``sender.send(kind, body, team_url)`` records one alert for the operator and, when
-- ``team_url`` is not empty, for the team; ``sender.raised`` and ``sender.ids`` are the script's
-- last two reply elements (alert kinds raised; deliveries recorded, to queue).

local function alert_sender(slots, undelivered, at)
  local owner, prefix, operator_url = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local ttl, grace = ARGV[at + 4], tonumber(ARGV[at + 5])
  local sender = {raised = {}, ids = {}, time = ARGV[at + 3]}

  local function record(url, signer, kind, body)
    local n = #sender.ids + 1
    local id, now = prefix .. '-' .. n, tonumber(redis.call('TIME')[1])
    redis.call('HSET', slots[n], 'team_id', owner, 'key_id', '', 'request_id', id, 'url', url,
      'body', body, 'status', 'pending', 'attempts', 0, 'next_at', now, 'created', now,
      'last_error', '', 'last_status', '', 'signer', signer, 'kind', kind)
    redis.call('EXPIRE', slots[n], ttl)
    redis.call('ZADD', undelivered, now + grace, id)
    redis.call('EXPIRE', undelivered, ttl)
    sender.ids[n] = id
  end

  function sender.send(kind, body, team_url)
    sender.raised[#sender.raised + 1] = kind
    if operator_url ~= '' then record(operator_url, 'operator', kind, body) end
    if team_url and team_url ~= '' then record(team_url, 'team', kind, body) end
  end
  return sender
end

-- An alert's JSON body: its type, ``fields`` (name, value, ...: numbers written as integers,
-- exact past 2^53 where cjson would round them), the time and a message for people.
local function alert_body(kind, time, fields, message)
  local parts = {'"type":' .. cjson.encode(kind)}
  for i = 1, #fields, 2 do
    local value = fields[i + 1]
    if type(value) == 'number' then value = string.format('%d', value)
    else value = cjson.encode(value) end
    parts[#parts + 1] = cjson.encode(fields[i]) .. ':' .. value
  end
  parts[#parts + 1] = '"time":' .. cjson.encode(time)
  parts[#parts + 1] = '"message":' .. cjson.encode(message)
  return '{' .. table.concat(parts, ',') .. '}'
end

local function money(micros) return string.format('%.2f', micros / 1000000) end
