-- SetSchedulePaused: pause or resume a schedule; resuming a paused one
-- moves since to now, so the ticks it missed never fire.
--
-- KEYS[1] -> {jobgate}:ws:<ws>:schedule:<name>
-- --
-- ARGV[1] -> '1' to pause, '0' to resume
-- ARGV[2] -> now, unix ms
--
-- Returns 1, or 0 when there is no such schedule.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '0' and redis.call('HGET', KEYS[1], 'paused') == '1' then
  redis.call('HSET', KEYS[1], 'since', ARGV[2])
end
redis.call('HSET', KEYS[1], 'paused', ARGV[1])
return 1
