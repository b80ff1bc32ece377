-- Change a team's balance and write the ledger entry, together.
-- KEYS[1] team record   KEYS[2] ledger stream
-- ARGV[1] amount (micros, signed)   ARGV[2] note
-- Returns {new balance, ledger entry id} or {"missing"}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
local entry = redis.call('XADD', KEYS[2], '*', 'kind', 'credit', 'amount_micros', ARGV[1],
  'balance_micros', balance, 'request_id', '', 'key_id', '', 'note', ARGV[2])
return {balance, entry}
