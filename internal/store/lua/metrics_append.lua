-- AppendMetrics: points of a job's metrics, in report order. A point
-- replaces the one at the same step; the last-values hash gets each point's
-- value in turn, so it ends with the last one reported.
--
-- (the job's own hash tag: its series spread over a Cluster's masters)
-- KEYS[1] -> {jobgate:job:<id>}:metrics (last value of each metric)
-- KEYS[2...] -> {jobgate:job:<id>}:metric:<name>, of each point in turn
-- --
-- ARGV[1] -> max names
-- ARGV[2] -> max points per metric
-- ARGV[3...] -> name, step ('next' = after the metric's highest), member,
--               value of each point
--
-- Returns how many points were dropped for the name limit.
local maxNames, maxPoints = tonumber(ARGV[1]), tonumber(ARGV[2])
local touched, dropped = {}, 0
for i = 3, #ARGV, 4 do
  local k = (i - 3) / 4 + 2
  local name, step = ARGV[i], ARGV[i+1]
  if redis.call('HEXISTS', KEYS[1], name) == 0 and redis.call('HLEN', KEYS[1]) >= maxNames then
    dropped = dropped + 1
  else
    local member = ARGV[i+2]
    if step == 'next' then
      local top = redis.call('ZRANGE', KEYS[k], -1, -1, 'WITHSCORES')
      step = '0'
      if top[2] then step = string.format('%d', tonumber(top[2]) + 1) end
      member = step .. ' ' .. member
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[k], step, step)
    redis.call('ZADD', KEYS[k], step, member)
    redis.call('HSET', KEYS[1], name, ARGV[i+3])
    touched[k] = true
  end
end
for k = 2, #KEYS do
  if touched[k] then redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -(maxPoints + 1)) end
end
return dropped
