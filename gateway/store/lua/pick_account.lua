-- Choose the fal account for a new job, and take one of its slots, atomically: weighted among
-- usable accounts with a free slot; when all are full, the least loaded of those whose limit is
-- soft (fal queues beyond an account's concurrency), or a refusal when every limit is hard.
--
-- KEYS[1] accounts (name -> JSON: key, weight, max_concurrent, hard_limit, enabled, ...)
-- KEYS[2] health (name -> JSON: state 'refused' or 'cooling', reason, since, until)
-- KEYS[3] jobs in flight per account (name -> count)
-- KEYS[4] slots held (member 'name|reservation' -> lapse time, ms)
-- KEYS[5] mean job duration per account (name -> ms)
-- ARGV[1] reservation id ('': choose without taking a slot nor minding limits: an upload)
-- ARGV[2] seconds a slot is held at most   ARGV[3] a uniform random number in [0, 1)
-- ARGV[4] mean job duration to assume before one was measured (ms)
-- ARGV[5..] accounts not to choose (already tried for this job)
--
-- Returns {'ok', name, sealed key}, {'full', retry after ms} (every usable account is at a
-- hard limit) or {'none', retry after ms (0: unknown)} (no account is usable).

local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)

-- Slots of jobs whose end was never seen lapse (a bounded number per call).
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
for _, member in ipairs(lapsed) do
  local name = string.match(member, '^(.-)|')
  if name and redis.call('HINCRBY', KEYS[3], name, -1) < 0 then
    redis.call('HSET', KEYS[3], name, 0)
  end
  redis.call('ZREM', KEYS[4], member)
end

local excluded = {}
for i = 5, #ARGV do excluded[ARGV[i]] = true end

local usable, free, total_weight = {}, {}, 0
local cool_until = nil
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local name = flat[i]
  local account = cjson.decode(flat[i + 1])
  local weight = tonumber(account.weight) or 0
  if account.enabled and weight > 0 and not excluded[name] then
    local ok = true
    local health = redis.call('HGET', KEYS[2], name)
    if health then
      health = cjson.decode(health)
      if health.state == 'refused' then
        ok = false
      elseif health.state == 'cooling' and tonumber(health['until']) * 1000 > now then
        ok = false
        local until_ms = tonumber(health['until']) * 1000
        if not cool_until or until_ms < cool_until then cool_until = until_ms end
      end
    end
    if ok then
      local entry = {
        name = name, key = account.key, weight = weight, hard = account.hard_limit,
        limit = tonumber(account.max_concurrent) or 0,
        count = tonumber(redis.call('HGET', KEYS[3], name)) or 0,
      }
      table.insert(usable, entry)
      -- A call without a slot (an upload) takes none of fal's concurrency: never full.
      if entry.limit == 0 or entry.count < entry.limit or ARGV[1] == '' then
        table.insert(free, entry)
        total_weight = total_weight + weight
      end
    end
  end
end

if #usable == 0 then
  return {'none', cool_until and math.ceil(cool_until - now) or 0}
end

local chosen = nil
if #free > 0 then
  local point = tonumber(ARGV[3]) * total_weight
  for _, entry in ipairs(free) do
    point = point - entry.weight
    chosen = entry
    if point < 0 then break end
  end
else
  -- Every account is full: the least loaded soft one (fal queues the job), heavier first.
  for _, entry in ipairs(usable) do
    if not entry.hard then
      local load = entry.count / entry.limit
      if not chosen or load < chosen.load or (load == chosen.load and entry.weight > chosen.weight)
      then
        chosen = entry
        chosen.load = load
      end
    end
  end
  if not chosen then
    -- A slot frees about every (mean job duration / limit) on each account: the soonest.
    local soonest = nil
    for _, entry in ipairs(usable) do
      local mean = tonumber(redis.call('HGET', KEYS[5], entry.name)) or tonumber(ARGV[4])
      local wait = mean / entry.limit
      if not soonest or wait < soonest then soonest = wait end
    end
    return {'full', math.ceil(soonest)}
  end
end

if ARGV[1] ~= '' then
  redis.call('HINCRBY', KEYS[3], chosen.name, 1)
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]) * 1000, chosen.name .. '|' .. ARGV[1])
end
return {'ok', chosen.name, chosen.key}
