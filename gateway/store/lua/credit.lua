-- Change a team's balance and write the ledger entry, together; a change that would take the
-- balance past +-ARGV[3] (and further from zero than it is) is refused and nothing is written.
-- KEYS[1] team record   KEYS[2] ledger stream
-- ARGV[1] amount (micros, signed)   ARGV[2] note   ARGV[3] largest balance allowed either way
-- ARGV[4] seconds ledger entries are kept (older ones are trimmed, a stream node at a time)
-- KEYS[3] the team's undelivered deliveries, KEYS[4..5] and ARGV[5..10]: the team's alert
-- deliveries (alert_delivery.lua; a credit may cross its low-balance threshold either way)
-- Returns {new balance, ledger entry id, alerts raised, alert deliveries}, {"missing"} or
-- {"out_of_range", balance it would be}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local current = tonumber(redis.call('HGET', KEYS[1], 'balance')) or 0
local after = current + tonumber(ARGV[1])
if math.abs(after) > tonumber(ARGV[3]) and math.abs(after) > math.abs(current) then
  return {'out_of_range', string.format('%d', after)}
end
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
local now = redis.call('TIME')
local oldest = math.max(0, tonumber(now[1]) - tonumber(ARGV[4])) * 1000
local entry = redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%d', oldest), '*',
  'kind', 'credit', 'amount_micros', ARGV[1], 'balance_micros', balance, 'request_id', '',
  'key_id', '', 'note', ARGV[2])
local alerts = alert_sender({KEYS[4], KEYS[5]}, KEYS[3], 5)
team_alerts(alerts, KEYS[1], ARGV[5], balance, nil)
return {balance, entry, alerts.raised, alerts.ids}
