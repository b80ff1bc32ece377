-- Prepended to finish.lua and credit.lua after alert_delivery.lua: once a team's balance (and,
-- from finish.lua, its spend) has changed, alert once per crossing of the team's thresholds.
--
-- Low balance: the balance below ``low_balance`` raises ``team.low_balance`` and sets
-- ``low_alerted``, so the changes that follow, still below, raise nothing; a change that
-- leaves the balance at or above the threshold (a credit) clears it, re-arming the alert.
-- Near a cap: the period's spend (settled plus reserved) at ``near_cap_pct`` % of the daily or
-- monthly cap or more raises ``team.near_cap`` once per period (``near_day``, ``near_month``
-- hold the period alerted).
--
-- ``spend`` is nil, or {day, day's spend, month, month's spend} after the change.

local function team_alerts(sender, team, team_id, balance, spend)
  local t = redis.call('HMGET', team, 'low_balance', 'low_alerted', 'alert_url',
    'daily_cap', 'monthly_cap', 'near_cap_pct', 'near_day', 'near_month')
  local threshold = tonumber(t[1]) or 0
  if threshold > 0 and balance < threshold then
    if t[2] ~= '1' then
      redis.call('HSET', team, 'low_alerted', '1')
      sender.send('team.low_balance', alert_body('team.low_balance', sender.time,
        {'team_id', team_id, 'balance_micros', balance, 'threshold_micros', threshold},
        'Team ' .. team_id .. "'s balance (" .. money(balance) ..
        ') is below its low-balance threshold (' .. money(threshold) .. ')'), t[3])
    end
  elseif t[2] == '1' then
    redis.call('HDEL', team, 'low_alerted')
  end

  local percent = tonumber(t[6]) or 0
  if not spend or percent <= 0 then return end
  local function near(period, adjective, cap, spent, name, flag, alerted)
    cap = tonumber(cap) or 0
    if cap <= 0 or alerted == name or spent * 100 < cap * percent then return end
    redis.call('HSET', team, flag, name)
    sender.send('team.near_cap', alert_body('team.near_cap', sender.time,
      {'team_id', team_id, 'period', period, 'spent_micros', spent, 'cap_micros', cap,
        'percent', percent},
      'Team ' .. team_id .. ' has spent ' .. money(spent) .. ' of its ' .. adjective .. ' cap of ' ..
      money(cap) .. ' (' .. name .. ')'))
  end
  near('day', 'daily', t[4], spend[2], spend[1], 'near_day', t[7])
  near('month', 'monthly', t[5], spend[4], spend[3], 'near_month', t[8])
end
