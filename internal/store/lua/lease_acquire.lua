-- AcquireLeadership: take the scheduler lease, or renew it for its holder.
--
-- KEYS[1] -> {jobgate}:scheduler:leader
-- --
-- ARGV[1] -> holder
-- ARGV[2] -> TTL, ms
--
-- Returns 1 while holder leads, else 0.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
